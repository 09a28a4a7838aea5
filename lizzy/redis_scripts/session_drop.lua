-- Invariant: DynamoDB wins a fork. Used when a session was written to DynamoDB while this Redis lineage
-- could not be reached (or a flush found DynamoDB no longer at the lineage's base): the Redis copy, its
-- dirty mark and its base go together, so neither a read nor a flush can bring the older lineage back.
-- With ARGV[2] set, only while the base is still the one the flush used (another flush may have moved it).
-- KEYS: session, dirty hash, dirty since, base hash. ARGV: phone, expected base ("" = any).
-- Returns 1 dropped, 0 kept (base moved).
if ARGV[2] ~= '' and redis.call('HGET', KEYS[4], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return 1
