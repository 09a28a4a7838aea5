-- Invariant: only the holder extends a lock, and a holder learns it lost the lock before writing again
-- (the fencing check the flusher makes before each page and before acting on a failed condition).
-- KEYS: lock. ARGV: token, ttl ms. Returns 1 renewed, 0 not ours (expired, or another holder).
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
