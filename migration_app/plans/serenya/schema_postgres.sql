-- Serenya's relational schema (seed 002), PostgreSQL. The seed names these tables; columns follow
-- the item shapes the seed shows. Timestamps are timestamptz, money is numeric, ids are uuid.
CREATE TABLE users (
  id uuid PRIMARY KEY, email text NOT NULL, name text, auth_provider text NOT NULL, external_id text NOT NULL,
  account_status text NOT NULL DEFAULT 'active', created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL
);
CREATE TABLE user_sessions (
  id uuid PRIMARY KEY, user_id uuid NOT NULL REFERENCES users(id), refresh_token_hash text NOT NULL, device_id uuid,
  status text NOT NULL, last_accessed_at timestamptz, expires_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL
);
CREATE TABLE user_devices (
  id uuid PRIMARY KEY, user_id uuid NOT NULL REFERENCES users(id), device_name text, platform text,
  biometric_type text, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL
);
CREATE TABLE subscriptions (
  id uuid PRIMARY KEY, user_id uuid NOT NULL REFERENCES users(id), subscription_type text NOT NULL,
  status text NOT NULL, provider text NOT NULL, start_date timestamptz, end_date timestamptz,
  external_subscription_id text, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL
);
CREATE TABLE consent_records (
  id uuid PRIMARY KEY, user_id uuid NOT NULL REFERENCES users(id), consent_type text NOT NULL, granted boolean NOT NULL,
  version text, metadata jsonb, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL
);
CREATE TABLE processing_jobs (
  id uuid PRIMARY KEY, user_id uuid NOT NULL REFERENCES users(id), original_filename text, status text NOT NULL,
  s3_bucket text, confidence_score numeric(5, 2), file_size bigint,
  created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL
);
CREATE TABLE processing_job_events (
  id uuid PRIMARY KEY, job_id uuid NOT NULL REFERENCES processing_jobs(id), event_type text NOT NULL, details jsonb,
  created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL
);
CREATE TABLE biometric_registrations (
  id uuid PRIMARY KEY, user_id uuid NOT NULL REFERENCES users(id), device_id uuid, biometric_type text,
  public_key bytea, is_active boolean NOT NULL, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL
);
CREATE TABLE payments (
  id uuid PRIMARY KEY, user_id uuid NOT NULL REFERENCES users(id), subscription_id uuid REFERENCES subscriptions(id),
  amount numeric(10, 2) NOT NULL, currency text NOT NULL, status text NOT NULL, provider_payment_id text,
  created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL
);
CREATE TABLE chat_options (
  id uuid PRIMARY KEY, category text NOT NULL, label text NOT NULL, prompt text, sort_order integer NOT NULL,
  is_active boolean NOT NULL, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL
);
CREATE TABLE chat_messages (
  id uuid PRIMARY KEY, job_id uuid NOT NULL REFERENCES processing_jobs(id), role text NOT NULL, content text,
  tags text[], created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL
);
