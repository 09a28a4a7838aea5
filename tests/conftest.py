pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.dynamodb",
    "tests.fixtures.api",
    "tests.fixtures.admin",
    "tests.fixtures.crm",
    "tests.fixtures.redis_server",
    "tests.fixtures.fault_proxy",
    "tests.fixtures.conversations",
]
