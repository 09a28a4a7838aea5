-- Invariant: a copy holding unflushed write-behind writes is never dropped (it is the only place those
-- writes exist); the check and the delete are one step, so a save landing in between cannot be lost.
-- KEYS: session, dirty hash. ARGV: phone, keep a tombstone (1, optional).
-- Returns 1 deleted, 0 absent, -1 kept because the phone is in the write-behind dirty set.
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return -1 end
if ARGV[2] == '1' then
  -- keep a tombstone (an end of a gone session): it still blocks a late fill of a copy read before that end
  local current = redis.call('GET', KEYS[1])
  if current and cjson.decode(current)['tombstone'] ~= nil then return 0 end
end
return redis.call('DEL', KEYS[1])
