-- Invariant: a cache fill or mirror write never replaces a newer version, a tombstone of a newer or
-- equal version, or a copy holding unflushed write-behind writes (they exist nowhere else). Versions
-- are monotonic per phone across lifetimes (a new lifetime starts above the last one's leftover), so a
-- fill from a read made before a delete or expire (older version) loses to the tombstone.
-- KEYS: session, dirty hash. ARGV: version, value JSON, expire-at epoch s, phone.
-- Returns 1 written, 0 refused.
local current = redis.call('GET', KEYS[1])
if current and tonumber(cjson.decode(current)['version'] or 0) >= tonumber(ARGV[1]) then
  return 0
end
if redis.call('HEXISTS', KEYS[2], ARGV[4]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EXAT', ARGV[3])
return 1
