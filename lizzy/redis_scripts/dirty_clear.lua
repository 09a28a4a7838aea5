-- Invariant: a phone leaves the dirty set only if no write happened since the flush read its counter.
-- Used for phones with nothing left to write (the value expired in Redis).
-- KEYS: dirty hash, dirty since, base hash. ARGV: phone1, counter1, phone2, counter2...
-- Returns the number of phones cleared.
local cleared = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    redis.call('ZREM', KEYS[2], ARGV[i])
    redis.call('HDEL', KEYS[3], ARGV[i])
    cleared = cleared + 1
  end
end
return cleared
