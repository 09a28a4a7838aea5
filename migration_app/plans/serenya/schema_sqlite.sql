-- Serenya's relational schema (seed 002), SQLite: the PostgreSQL schema with SQLite's declared types.
-- Declared types (TIMESTAMP, JSON, BOOLEAN, DECIMAL) tell the source reader how to convert values.
CREATE TABLE users (
  id TEXT PRIMARY KEY, email text NOT NULL, name text, auth_provider text NOT NULL, external_id text NOT NULL,
  account_status text NOT NULL DEFAULT 'active', created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL
);
CREATE TABLE user_sessions (
  id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id), refresh_token_hash text NOT NULL, device_id TEXT,
  status text NOT NULL, last_accessed_at TIMESTAMP, expires_at TIMESTAMP NOT NULL,
  created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL
);
CREATE TABLE user_devices (
  id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id), device_name text, platform text,
  biometric_type text, created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL
);
CREATE TABLE subscriptions (
  id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id), subscription_type text NOT NULL,
  status text NOT NULL, provider text NOT NULL, start_date TIMESTAMP, end_date TIMESTAMP,
  external_subscription_id text, created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL
);
CREATE TABLE consent_records (
  id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id), consent_type text NOT NULL, granted BOOLEAN NOT NULL,
  version text, metadata JSON, created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL
);
CREATE TABLE processing_jobs (
  id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id), original_filename text, status text NOT NULL,
  s3_bucket text, confidence_score DECIMAL(5, 2), file_size bigint,
  created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL
);
CREATE TABLE processing_job_events (
  id TEXT PRIMARY KEY, job_id TEXT NOT NULL REFERENCES processing_jobs(id), event_type text NOT NULL, details JSON,
  created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL
);
CREATE TABLE biometric_registrations (
  id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id), device_id TEXT, biometric_type text,
  public_key BLOB, is_active BOOLEAN NOT NULL, created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL
);
CREATE TABLE payments (
  id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id), subscription_id TEXT REFERENCES subscriptions(id),
  amount DECIMAL(10, 2) NOT NULL, currency text NOT NULL, status text NOT NULL, provider_payment_id text,
  created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL
);
CREATE TABLE chat_options (
  id TEXT PRIMARY KEY, category text NOT NULL, label text NOT NULL, prompt text, sort_order integer NOT NULL,
  is_active BOOLEAN NOT NULL, created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL
);
CREATE TABLE chat_messages (
  id TEXT PRIMARY KEY, job_id TEXT NOT NULL REFERENCES processing_jobs(id), role text NOT NULL, content text,
  tags JSON, created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL
);
