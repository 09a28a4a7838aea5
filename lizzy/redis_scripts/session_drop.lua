-- Invariant: DynamoDB wins a fork. Used when a session was written to DynamoDB while this Redis lineage
-- could not be reached (or a flush found DynamoDB no longer at the lineage's base): the Redis copy, its
-- dirty mark and its base go together, so neither a read nor a flush can bring the older lineage back.
-- With ARGV[2] set, only while the base is still the one the flush used (another flush may have moved it).
-- With ARGV[3] set (the version a process wrote to DynamoDB while Redis was away from it), only a copy
-- older than that write: a dirty copy whose base is below it (a lineage forked before the write), a clean
-- copy or tombstone below it. A copy descending from the write or later (filled, flushed or written on top
-- of it since, by another process) is newer than what that process knows, and stays.
-- KEYS: session, dirty hash, dirty since, base hash. ARGV: phone, expected base ("" = any), written version
-- ("" = any). Returns 1 dropped, 0 kept (base moved, or the copy is not older than the write), -1 (with
-- ARGV[3]) no copy at all: a fill of a copy read before the write may still land, so the caller keeps it.
if ARGV[2] ~= '' and redis.call('HGET', KEYS[4], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[3] ~= '' then
  local written = tonumber(ARGV[3])
  if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
    local base = tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '0')
    if base >= written then return 0 end
  else
    local current = redis.call('GET', KEYS[1])
    if not current then return -1 end
    if tonumber(cjson.decode(current)['version'] or 0) >= written then return 0 end
  end
end
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return 1
