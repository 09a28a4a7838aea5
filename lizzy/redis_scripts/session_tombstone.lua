-- Invariant: a deleted or expired session never comes back through Redis. The value is replaced by a
-- tombstone one version above it, which every read treats as "no session" and every fill of an older
-- version loses to. In write-behind (mark dirty) the tombstone is dirty and never expires until the
-- flusher has applied it to DynamoDB; otherwise it expires after ARGV[6] seconds (longer than any read
-- that could still fill an older copy). Compare-and-set on the version the operator saw.
-- KEYS: session, dirty hash, dirty since, dirty seq, base hash.
-- ARGV: expected version ("" = any live), phone, now ms, kind (deleted|expired), mark dirty (0/1),
--       clean tombstone lifetime s, tombstone version when no live value is there ("" = none),
--       keep a later lifetime (0 no, 1 any live value above ARGV[7], 2 one that started after the end).
-- The tombstone's version is one above the value's, or ARGV[7] when that is higher (DynamoDB's leftover).
-- With ARGV[8] = 1 and ARGV[7] (parallel: DynamoDB ended a session Redis lacked, at that version), a live value
-- above it is a later lifetime (created since, stamped above the leftover): it stays, as a newer tombstone does.
-- With ARGV[8] = 0 (cutover: DynamoDB, the store of record, ended whatever was live) a live value above the
-- leftover is ended all the same: it can be the ended session itself, turns a process still in parallel
-- acknowledged from Redis while their DynamoDB mirror failed, which a catch-up would otherwise carry back.
-- With ARGV[8] = 2 (cached) only what started after the end stays (below).
-- With ARGV[7] and ARGV[5] = 0 over an unflushed write-behind lineage (dirty, its base below ARGV[7]), the tombstone
-- is dirty and its base becomes ARGV[7]: DynamoDB holds the leftover, and the flush writes the tombstone over it.
-- Returns 1 tombstoned a live session, 0 none live (or a later one kept, or with ARGV[7] an older tombstone),
-- 2 a tombstone was there (ended already; with ARGV[7], at or above it; with ARGV[5] = 1, an unflushed one),
-- -(N + 1) version mismatch (N = current version).
local current = redis.call('GET', KEYS[1])
local version = nil
if current then
  local document = cjson.decode(current)
  if document['tombstone'] == nil then version = tonumber(document['version'] or 0) end
end
if version == nil then
  if ARGV[7] ~= '' and ARGV[5] == '0' then
    -- DynamoDB decided (the session was not in Redis): block fills of the older copy.
    local floor = tonumber(ARGV[7])
    local old = current and tonumber(cjson.decode(current)['version'] or 0) or -1
    local dirty = redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1
    if current and old >= floor then
      -- Ended here already, at or above DynamoDB's end: what DynamoDB ended was an older copy (2). An unflushed
      -- tombstone now descends from the leftover (the flush writes it over that, not over the older version, and
      -- a lifetime created on it meanwhile inherits that base: below it, the flush would drop it as a fork).
      if dirty and tonumber(redis.call('HGET', KEYS[5], ARGV[2]) or '-1') < floor then
        redis.call('HSET', KEYS[5], ARGV[2], floor)
      end
      return 2
    end
    if not dirty then
      local stone = cjson.encode({phone = ARGV[2], version = floor, tombstone = ARGV[4]})
      redis.call('SET', KEYS[1], stone, 'EX', ARGV[6])
    end
    return 0  -- an older tombstone (or none): DynamoDB's end was the real one
  end
  -- A tombstone: the session is ended here already. In write-behind only an unflushed one says so: a flushed one
  -- says only that DynamoDB took that end, and a lifetime written through to DynamoDB since, while Redis was away
  -- from its writer, is live there (0: the caller asks DynamoDB).
  if current and (ARGV[5] == '0' or redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1) then return 2 end
  return 0
end
if ARGV[8] == '1' and ARGV[7] ~= '' and version > tonumber(ARGV[7]) then return 0 end
if ARGV[8] == '2' and ARGV[7] ~= '' and version > tonumber(ARGV[7]) then
  -- cached: a clean copy above the leftover is a later durable lifetime (clean copies are DynamoDB's versions,
  -- and DynamoDB ended the one that was live), a dirty one whose base is at or above the leftover a write-behind
  -- lifetime stamped above it: both started after the end and stay. A dirty lineage from below the leftover
  -- holds turns the end ended.
  if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then return 0 end
  if tonumber(redis.call('HGET', KEYS[5], ARGV[2]) or '-1') >= tonumber(ARGV[7]) then return 0 end
end
if ARGV[1] ~= '' and version ~= tonumber(ARGV[1]) then return -(version + 1) end
local stone_version = version + 1
if ARGV[7] ~= '' and tonumber(ARGV[7]) > stone_version then stone_version = tonumber(ARGV[7]) end
local stone = cjson.encode({phone = ARGV[2], version = stone_version, tombstone = ARGV[4]})
local dirty = redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1
if ARGV[5] == '1' then
  if not dirty then redis.call('HSET', KEYS[5], ARGV[2], version) end
  redis.call('SET', KEYS[1], stone)
  local seq = redis.call('INCR', KEYS[4])
  redis.call('HSET', KEYS[2], ARGV[2], seq)
  redis.call('ZADD', KEYS[3], 'NX', ARGV[3], ARGV[2])
elseif dirty and ARGV[7] ~= '' then
  -- DynamoDB ended an unflushed lineage from below its leftover: the tombstone replaces that lineage and descends
  -- from the leftover, dirty until the flush writes it there. Left clean-expiring on the old base, the next
  -- lifetime created on it inherited that base, and the flush dropped it as a fork. The counter stays: a flush
  -- whose write of the lineage landed before the end (DynamoDB then ended that) clears it as a flushed tombstone.
  if tonumber(redis.call('HGET', KEYS[5], ARGV[2]) or '-1') < tonumber(ARGV[7]) then
    redis.call('HSET', KEYS[5], ARGV[2], ARGV[7])
  end
  redis.call('SET', KEYS[1], stone)
else
  redis.call('SET', KEYS[1], stone, 'EX', ARGV[6])
end
return 1
