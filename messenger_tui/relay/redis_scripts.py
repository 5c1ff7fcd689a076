"""Lua scripts of the Redis relay store (:mod:`messenger_tui.relay.redis_store`).

Each script touches the keys of ONE recipient (or one identity, or one shared body), all named
with the same hash tag, so it runs atomically on one node of a Redis Cluster. Key layout and
record format: see :mod:`messenger_tui.relay.redis_keys`.

A record (the value in a mailbox's ``e`` hash) is ``flag || tail``: ``flag`` is ``"1"`` for a
message request and ``"0"`` for a contact envelope (decided here, against the recipient's
verifier, so a rotation on another node is seen at once); ``tail`` is built by the relay:
``>I4 size, >i8 stored_at_ms, >i8 expires_at_ms, >I2 len(sender), >I2 len(msg_id),
>I2 len(body_key)``, then sender, msg_id, body_key (empty for 1:1) and the payload (the body,
or this recipient's header when ``body_key`` names a shared body).
"""

from __future__ import annotations

from typing import Final

#: Shared by the mailbox scripts: parse a record, delete one by seq, purge the expired head.
#: KEYS: 1 seq, 2 q (zset seq->seq), 3 e (hash seq->record), 4 k (hash msg_id..sender->seq),
#: 5 m (hash msg_id->"seq,seq"), 6 u (usage hash), 7 v (verifier), 8 the slot's purge index.
#: The presented verifier of an envelope that reached its recipient through a group send
#: grant (relay/group_grants.py): a contact's, whatever the recipient's verifier.
GRANTED: Final = b"granted"

_MAILBOX_COMMON: Final = r"""
local released = {}
local function parse(rec)
  local size, stored, expires, ls, lm, lb, pos = struct.unpack('>I4i8i8I2I2I2', rec, 2)
  local sender = string.sub(rec, pos, pos + ls - 1)
  local msgid = string.sub(rec, pos + ls, pos + ls + lm - 1)
  local bodykey = string.sub(rec, pos + ls + lm, pos + ls + lm + lb - 1)
  return string.sub(rec, 1, 1) == '1', size, expires, sender, msgid, bodykey
end
local function unlist(msgid, seq)
  local list = redis.call('HGET', KEYS[5], msgid)
  if not list then return end
  local kept = {}
  for s in string.gmatch(list, '[^,]+') do
    if s ~= seq then kept[#kept + 1] = s end
  end
  if #kept == 0 then redis.call('HDEL', KEYS[5], msgid)
  else redis.call('HSET', KEYS[5], msgid, table.concat(kept, ',')) end
end
local function remove(seq)
  local rec = redis.call('HGET', KEYS[3], seq)
  redis.call('ZREM', KEYS[2], seq)
  if not rec then return end
  local request, size, expires, sender, msgid, bodykey = parse(rec)
  redis.call('HDEL', KEYS[3], seq)
  if redis.call('HGET', KEYS[4], msgid .. sender) == seq then
    redis.call('HDEL', KEYS[4], msgid .. sender)
  end
  unlist(msgid, seq)
  if request then
    redis.call('HINCRBY', KEYS[6], 'rc', -1)
    redis.call('HINCRBY', KEYS[6], 'rb', -size)
    if redis.call('HINCRBY', KEYS[6], 's' .. sender, -1) <= 0 then
      redis.call('HDEL', KEYS[6], 's' .. sender)
    end
  else
    redis.call('HINCRBY', KEYS[6], 'cc', -1)
    redis.call('HINCRBY', KEYS[6], 'cb', -size)
  end
  if #bodykey > 0 then released[#released + 1] = bodykey end
end
-- Delete up to `limit` expired envelopes from the head (oldest seq first); stop at the first
-- unexpired one. Returns how many went and the head's expiry (false: the mailbox is empty).
local function purge_head(now, limit)
  local n = 0
  while true do
    local first = redis.call('ZRANGE', KEYS[2], 0, 0)
    if #first == 0 then return n, false end
    local rec = redis.call('HGET', KEYS[3], first[1])
    local expires = 0
    if rec then
      local _, _, e = parse(rec)
      expires = e
    end
    if expires > now or n >= limit then return n, expires end
    remove(first[1])
    n = n + 1
  end
end
local function finish(recipient, now)
  local _, head = purge_head(now, 0)
  if head then
    redis.call('ZADD', KEYS[8], head, recipient)
  else
    redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
    redis.call('ZREM', KEYS[8], recipient)
  end
end
"""

#: One recipient's inserts and acks of one batch. ARGV: recipient, now, the five quota
#: limits (contact count, contact bytes, request count, request bytes, per sender), the
#: number of inserts, then per insert: sender, msg_id, presented verifier ("" for none,
#: :data:`GRANTED` for a recipient reached through its group send grant), size,
#: record tail; then the number of acks and the acked msg_ids. Returns {results, released}:
#: per insert {code, request, seq[, original record]} (code 0 stored, 1 duplicate, 2 mailbox
#: full, 3 requests full, 4 sender's requests full), and the shared-body keys whose reference
#: an ack deleted.
WRITE: Final = (
    _MAILBOX_COMMON
    + r"""
local recipient, now = ARGV[1], tonumber(ARGV[2])
local qcc, qcb, qrc, qrb, qps =
  tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local verifier = redis.call('GET', KEYS[7])
local results = {}
local i = 9
for _ = 1, tonumber(ARGV[8]) do
  local sender, msgid, access, size, tail =
    ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]), ARGV[i + 4]
  i = i + 5
  local request = verifier ~= false and access ~= verifier and access ~= 'granted'
  local flag = request and 1 or 0
  local old = redis.call('HGET', KEYS[4], msgid .. sender)
  if old then
    results[#results + 1] = {1, flag, tonumber(old), redis.call('HGET', KEYS[3], old)}
  else
    local u = redis.call('HMGET', KEYS[6], 'cc', 'cb', 'rc', 'rb', 's' .. sender)
    local cc, cb, rc, rb, ps =
      tonumber(u[1] or 0), tonumber(u[2] or 0), tonumber(u[3] or 0), tonumber(u[4] or 0),
      tonumber(u[5] or 0)
    local code = 0
    if not request then
      if cc >= qcc or cb + size > qcb then code = 2 end
    elseif ps >= qps then code = 4
    elseif rc >= qrc or rb + size > qrb then code = 3 end
    if code ~= 0 then
      results[#results + 1] = {code, flag, 0}
    else
      local seq = redis.call('INCR', KEYS[1])
      local s = tostring(seq)
      redis.call('HSET', KEYS[3], s, tostring(flag) .. tail)
      redis.call('ZADD', KEYS[2], seq, s)
      redis.call('HSET', KEYS[4], msgid .. sender, s)
      local list = redis.call('HGET', KEYS[5], msgid)
      redis.call('HSET', KEYS[5], msgid, list and (list .. ',' .. s) or s)
      if request then
        redis.call('HINCRBY', KEYS[6], 'rc', 1)
        redis.call('HINCRBY', KEYS[6], 'rb', size)
        redis.call('HINCRBY', KEYS[6], 's' .. sender, 1)
      else
        redis.call('HINCRBY', KEYS[6], 'cc', 1)
        redis.call('HINCRBY', KEYS[6], 'cb', size)
      end
      results[#results + 1] = {0, flag, seq}
    end
  end
end
local acks = tonumber(ARGV[i])
for j = 1, acks do
  local list = redis.call('HGET', KEYS[5], ARGV[i + j])
  if list then
    for s in string.gmatch(list, '[^,]+') do remove(s) end
  end
end
finish(recipient, now)
return {results, released}
"""
)

#: Up to ARGV[2] unexpired envelopes with seq > ARGV[1] (ARGV[3]: now), oldest first, as a
#: flat list seq, record, seq, record... KEYS: q, e.
FETCH: Final = r"""
local after, limit, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
local found = 0
local offset = 0
while found < limit do
  local seqs = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. after, '+inf', 'LIMIT', offset, limit)
  if #seqs == 0 then break end
  offset = offset + #seqs
  local recs = redis.call('HMGET', KEYS[2], unpack(seqs))
  for j = 1, #seqs do
    local rec = recs[j]
    if rec and found < limit then
      local _, _, expires = struct.unpack('>I4i8i8', rec, 2)
      if expires > now then
        out[#out + 1] = seqs[j]
        out[#out + 1] = rec
        found = found + 1
      end
    end
  end
end
return out
"""

#: Unexpired envelopes waiting (ARGV[1]: now): the size minus the expired head (every
#: envelope gets the same TTL, so expiry follows seq). KEYS: q, e.
COUNT: Final = r"""
local now = tonumber(ARGV[1])
local total = redis.call('ZCARD', KEYS[1])
local expired = 0
local offset = 0
while offset < total do
  local seqs = redis.call('ZRANGE', KEYS[1], offset, offset + 99)
  if #seqs == 0 then break end
  local recs = redis.call('HMGET', KEYS[2], unpack(seqs))
  for j = 1, #seqs do
    local rec = recs[j]
    if rec then
      local _, _, expires = struct.unpack('>I4i8i8', rec, 2)
      if expires > now then return total - expired end
    end
    expired = expired + 1
  end
  offset = offset + #seqs
end
return total - expired
"""

#: Purge up to ARGV[3] expired envelopes of one recipient (ARGV[1]: recipient, ARGV[2]: now);
#: keeps the slot's purge index at the new head's expiry. Returns {purged, more, released}.
PURGE: Final = (
    _MAILBOX_COMMON
    + r"""
local now, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local n, head = purge_head(now, limit)
finish(ARGV[1], now)
return {n, (head and head <= now) and 1 or 0, released}
"""
)

#: Store a multi-recipient body (KEYS[1]) with its reference fields, expiring in ARGV[1] ms
#: (one script: never a body without its expiry). ARGV: ttl_ms, body, then the recipients.
PUT_BODY: Final = r"""
redis.call('HSET', KEYS[1], 'body', ARGV[2])
for j = 3, #ARGV do redis.call('HSET', KEYS[1], 'r' .. ARGV[j], '1') end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 0
"""

#: Drop references ARGV[1..] from a shared body (KEYS[1]); delete it with its last one.
RELEASE_BODY: Final = r"""
for j = 1, #ARGV do redis.call('HDEL', KEYS[1], 'r' .. ARGV[j]) end
if redis.call('HLEN', KEYS[1]) <= 1 then redis.call('DEL', KEYS[1]) end
return 0
"""

#: Replace the signed prekey and add one-time prekeys. KEYS: spk, opk (zset id -> id||key).
#: ARGV: signed record, max one-time, then per one-time prekey: id, member. Returns the count.
PUT_PREKEYS: Final = r"""
redis.call('SET', KEYS[1], ARGV[1])
local max = tonumber(ARGV[2])
local held = redis.call('ZCARD', KEYS[2])
local i = 3
while i < #ARGV do
  if held >= max then break end
  local id = ARGV[i]
  if redis.call('ZCOUNT', KEYS[2], id, id) == 0 then
    redis.call('ZADD', KEYS[2], id, ARGV[i + 1])
    held = held + 1
  end
  i = i + 2
end
return held
"""

#: The signed prekey and (ARGV[1] == "1") the lowest one-time prekey, removed. KEYS: spk, opk.
TAKE_BUNDLE: Final = r"""
local spk = redis.call('GET', KEYS[1])
if not spk then return false end
if ARGV[1] == '1' then
  local opk = redis.call('ZPOPMIN', KEYS[2])
  if #opk > 0 then return {spk, opk[1]} end
end
return {spk}
"""
