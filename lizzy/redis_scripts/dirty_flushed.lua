-- Invariant: after the flusher wrote version V of a phone to DynamoDB (conditional on the base), V is
-- the new base, unless an end with a floor (session_tombstone.lua) moved it above V since (to DynamoDB's
-- leftover, which a create on that tombstone builds on); the phone leaves the dirty set only if no write
-- happened since the flush read its counter (a later write keeps its mark and goes out next time). A flushed tombstone
-- becomes a clean one that expires (DynamoDB now says "no session"), still blocking older fills.
-- KEYS: dirty hash, dirty since, base hash, session. ARGV: phone1, counter1, version1, phone2, ...;
-- the last ARGV is the clean tombstone lifetime s.
-- Returns the number of phones cleared.
local cleared = 0
local lifetime = ARGV[#ARGV]
for i = 1, #ARGV - 1, 3 do
  local phone = ARGV[i]
  -- never lowered: an end with a floor moved it up since, to DynamoDB's leftover
  if tonumber(redis.call('HGET', KEYS[3], phone) or '-1') < tonumber(ARGV[i + 2]) then
    redis.call('HSET', KEYS[3], phone, ARGV[i + 2])
  end
  if redis.call('HGET', KEYS[1], phone) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], phone)
    redis.call('ZREM', KEYS[2], phone)
    redis.call('HDEL', KEYS[3], phone)
    local name = KEYS[4] .. phone
    local value = redis.call('GET', name)
    if value and cjson.decode(value)['tombstone'] ~= nil then redis.call('EXPIRE', name, lifetime) end
    cleared = cleared + 1
  end
end
return cleared
