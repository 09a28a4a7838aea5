-- Invariant: only the holder's token releases a lock (after an expiry someone else may hold it).
-- KEYS: lock. ARGV: token. Returns 1 released, 0 not ours.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
