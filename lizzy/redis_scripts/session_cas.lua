-- Invariant: a session value changes only from the version the writer read (compare-and-set), and a
-- write-behind write is marked dirty in the same atomic step, so an acknowledged write is always either
-- in DynamoDB or still in the dirty set. When a clean phone first becomes dirty, the version of the
-- DynamoDB item this lineage descends from is kept as its flush base: for an update, the clean copy's
-- version (a clean copy is the durable one); for a create, the version it was stamped above (the
-- leftover's or the flushed tombstone's; 0 when DynamoDB has no item). The flusher writes only over it.
-- A tombstone (a deleted or expired session) counts as absent for a create and as a conflict for an update;
-- a create must be stamped above the tombstone's version (versions never go back within a phone's keys).
-- KEYS: session, dirty hash, dirty since, dirty seq, base hash.
-- ARGV: expected version ("" = must not exist), value JSON, expire-at epoch s, mark dirty (0/1), phone, now ms,
--       the new value's version.
-- Returns {1, new counter or 0} written; {0, current version} mismatch; {0, -1} absent; {0, -2} tombstone;
-- {0, -3} a create stamped at or below the tombstone's version (the caller stamps it above and retries).
local current = redis.call('GET', KEYS[1])
local current_version = -1
local tombstone = false
if current then
  local document = cjson.decode(current)
  current_version = tonumber(document['version'] or 0)
  tombstone = document['tombstone'] ~= nil
end
if ARGV[1] == '' then
  if current and not tombstone then return {0, current_version} end
  if tombstone and current_version >= tonumber(ARGV[7]) then return {0, -3} end
elseif tombstone then
  return {0, -2}
elseif current_version ~= tonumber(ARGV[1]) then
  return {0, current_version}
end
redis.call('SET', KEYS[1], ARGV[2], 'EXAT', ARGV[3])
local seq = 0
if ARGV[4] == '1' then
  if redis.call('HEXISTS', KEYS[2], ARGV[5]) == 0 then
    local base = tonumber(ARGV[7]) - 1
    if current and not tombstone then base = current_version end
    redis.call('HSET', KEYS[5], ARGV[5], base)
  end
  seq = redis.call('INCR', KEYS[4])
  redis.call('HSET', KEYS[2], ARGV[5], seq)
  redis.call('ZADD', KEYS[3], 'NX', ARGV[6], ARGV[5])
end
return {1, seq}
