-- K9's DuckDB file before the move (seed 004): users, reports, embeddings.
-- Times are TIMESTAMP (UTC, naive): DuckDB's Python client needs pytz to return TIMESTAMPTZ values.
CREATE TABLE users (
  user_id VARCHAR PRIMARY KEY, email VARCHAR NOT NULL, name VARCHAR, preferences JSON,
  created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL
);
CREATE TABLE reports (
  report_id VARCHAR PRIMARY KEY, user_id VARCHAR NOT NULL, title VARCHAR NOT NULL, content VARCHAR,
  status VARCHAR NOT NULL, score DECIMAL(6, 2), created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL
);
CREATE TABLE embeddings (
  embedding_id VARCHAR PRIMARY KEY, product_id VARCHAR NOT NULL, model_version VARCHAR NOT NULL,
  vector DOUBLE[] NOT NULL, dimensions INTEGER NOT NULL, created_at TIMESTAMP NOT NULL
);
