"""The Lua scripts of the Redis store. Redis runs a script atomically: no other command runs in between, so
each one is a transaction — the version check, the events, the projection, its indexes and the feed position
of an append commit together or not at all, and in the order of their scripts.

Keys, under the store's prefix ``P`` (``sessionflow:`` by default):

=====================  =========================================================================================
``P s:<id>``           hash, the projection: ``v`` version, ``st`` status, ``u`` / ``w`` / ``m`` / ``lc`` user,
                       workspace, module and lifecycle (``"=" + value``, ``""`` for none), ``c`` created (ms),
                       ``cp`` the feed position of its ``created`` event (the list order),
                       ``due`` deadline of a
                       live session (ms, ``""`` for none), ``exp`` expiry (ms or ``""``), ``del`` ``"1"`` once
                       deleted, ``doc`` the whole session (``codec.py``)
``P e:<id>``           list, the session's events, oldest first (never rewritten)
``P pos``              the feed counter: each event's position is one ``INCR``, in commit order
``P feed``             sorted set, score the position, member ``<id>:<version>`` (the global feed)
``P ids``              set, every session id that has events
``P i:all``            sorted set, every projected session, score ``cp``: the list order (creation order)
``P i:st:<status>``    the same, per status; ``P i:u:=<user>``, ``P i:w:=<ws>``, ``P i:m:=<module>``
``P due``              sorted set, score the deadline of each live session: the sweeper's queue
``P a:=<user>``        set, the user's sessions in progress and not deleted (``single_active_per_user``)
``P n``                hash, status -> sessions (not deleted) in it
``P consumers``        hash, feed consumer -> position
``P order``            ``"1"`` once the list indexes are scored by ``cp`` (data stored before are re-scored
                       once, by :data:`RESCORE`)
``P k:<name>``         string, an idempotency key, ``<name>`` being ``<n>:<scope>:<key>`` (``n`` the scope's
                       length in bytes, so that no two (scope, key) pairs share a name): ``<expires (ms)>,<session
                       id>,<version>,<fingerprint>``, with the key's window as its Redis expiry (``PX``, the one
                       Redis expiry the store sets); see ``keys.py``
``P kx``               sorted set, score a key's ``expires``, member ``<session id>:<key's name>``: what
                       :data:`DROP_KEYS` scans
``P ks:<id>``          set, the names of the idempotency keys a session's writes stored (what a purge removes)
=====================  =========================================================================================

Channels: ``P deadline`` (payload: the new deadline, epoch ms) when a deadline is new or earlier than it was,
``P events`` (empty payload) when events were appended — what the change watcher listens to. ``P sync`` (empty
payload, no listener) is published outside the scripts, only to make the replicas' acknowledgement cover what
was read before it (``RedisLink.confirm_replicated``).
"""

from __future__ import annotations

from typing import Final

__all__ = ["APPLY", "CHANGE_FIELDS", "CLAIM", "DROP_KEYS", "QUERY", "READ_EVENTS", "RESCORE", "SAVE_CONSUMER"]

#: The values each change takes in :data:`APPLY`'s arguments, before its events.
CHANGE_FIELDS: Final = 21

#: Apply changes. ARGV: prefix, the mode ("1": one change, a refusal is returned as is; "0": a sweep batch,
#: refused changes are skipped; "2": a batch applied whole or not at all), the number of changes, then per
#: change: id, expected version, document,
#: status, user, workspace, module, lifecycle, created, due, expires, deleted, exclusive user, decided at (ms or ""),
#: the first event's record id, the number of events, the idempotency key's name (or "" for none), its
#: fingerprint, created and expires (ms) and window (ms: its ``PX``), then the events.
#: Strict result: {1, version} applied; {0, actual} version conflict; {2, other id} another session of the
#: exclusive user is in progress; {3, version} this very change was applied already (a retry after a lost
#: connection); {4, key's name} its idempotency key is stored and not expired at the key's created time.
#: Batch result: {flags ("1" applied / "0" skipped, one per change), earliest deadline or ""}.
#: Mode "2" first checks every change as the batch's earlier ones leave the data (versions, the exclusive user's
#: sessions in progress, the idempotency keys stored or taken by an earlier change) and refuses the whole batch
#: with {code, detail, index of the change (from 0)}, the codes those of a strict refusal ({3, version, 0}: the
#: batch was applied already); else applies all, as a sweep batch.
APPLY: Final = r"""
local p = ARGV[1]
local strict = ARGV[2] == '1'
local count = tonumber(ARGV[3])
-- an idempotency key stored and not expired at the change's created time (the manager's clock, not Redis's)
local function key_live(kname, kcreated)
  local stored = redis.call('GET', kname)
  return stored and tonumber(string.match(stored, '^(-?%d+),')) > tonumber(kcreated)
end
if ARGV[2] == '2' then
  local vers, act, bexp, bkeys = {}, {}, {}, {}
  local function running(oexp, decided)
    return decided == '' or not oexp or oexp == '' or tonumber(oexp) > tonumber(decided)
  end
  local j = 4
  for c = 1, count do
    local sid, expected = ARGV[j], tonumber(ARGV[j + 1])
    local st, u, exp, del = ARGV[j + 3], ARGV[j + 4], ARGV[j + 10], ARGV[j + 11]
    local excl, decided, rid, n = ARGV[j + 12], ARGV[j + 13], ARGV[j + 14], tonumber(ARGV[j + 15])
    local kname, kcreated = ARGV[j + 16], ARGV[j + 18]
    j = j + 21 + n
    local version = vers[sid]
    if version == nil then version = tonumber(redis.call('HGET', p .. 's:' .. sid, 'v')) or 0 end
    if version ~= expected then
      if c == 1 and version >= expected + n then
        local stored = redis.call('LINDEX', p .. 'e:' .. sid, expected)
        if stored then
          local comma = string.find(stored, ',', 1, true)
          if comma and string.sub(stored, comma + 2, comma + 1 + #rid) == rid then return {3, version, 0} end
        end
      end
      return {0, version, c - 1}
    end
    if excl ~= '' then
      for _, other in ipairs(redis.call('SMEMBERS', p .. 'a:' .. excl)) do
        if other ~= sid and act[other] == nil
            and running(redis.call('HGET', p .. 's:' .. other, 'exp'), decided) then
          return {2, other, c - 1}
        end
      end
      for other, user in pairs(act) do
        if other ~= sid and user == excl and running(bexp[other], decided) then return {2, other, c - 1} end
      end
    end
    if kname ~= '' then
      if bkeys[kname] or key_live(kname, kcreated) then return {4, kname, c - 1} end
      bkeys[kname] = true
    end
    vers[sid] = expected + n
    if del ~= '1' and st == 'in_progress' and u ~= '' then act[sid] = u else act[sid] = false end
    bexp[sid] = exp
  end
end
local i = 4
local flags = {}
local appended = false
for c = 1, count do
  local sid, expected, doc = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local st, u, w, m, lc = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  local created, due, exp, del = ARGV[i + 8], ARGV[i + 9], ARGV[i + 10], ARGV[i + 11]
  local excl, decided, rid, n = ARGV[i + 12], ARGV[i + 13], ARGV[i + 14], tonumber(ARGV[i + 15])
  local kname, kfp, kcreated, kexp, kpx = ARGV[i + 16], ARGV[i + 17], ARGV[i + 18], ARGV[i + 19], ARGV[i + 20]
  local first = i + 21
  i = first + n
  local skey = p .. 's:' .. sid
  local ekey = p .. 'e:' .. sid
  local old = redis.call('HMGET', skey, 'v', 'st', 'u', 'w', 'm', 'due', 'del', 'cp')
  local version = tonumber(old[1]) or 0
  local refused = nil
  if version ~= expected then
    refused = {0, version}
    if version >= expected + n then
      local stored = redis.call('LINDEX', ekey, expected)
      if stored then
        local comma = string.find(stored, ',', 1, true)
        if comma and string.sub(stored, comma + 2, comma + 1 + #rid) == rid then refused = {3, version} end
      end
    end
  elseif excl ~= '' then
    local others = redis.call('SMEMBERS', p .. 'a:' .. excl)
    for _, other in ipairs(others) do
      if other ~= sid then
        local oexp = redis.call('HGET', p .. 's:' .. other, 'exp')
        if decided == '' or not oexp or oexp == '' or tonumber(oexp) > tonumber(decided) then
          refused = {2, other}
          break
        end
      end
    end
  end
  if not refused and kname ~= '' and key_live(kname, kcreated) then refused = {4, kname} end
  if refused then
    if strict then return refused end
    if refused[1] == 3 then flags[c] = '1' else flags[c] = '0' end
  else
    flags[c] = '1'
    local ost, ou, ow, om, odue, odel = old[2], old[3], old[4], old[5], old[6], old[7]
    -- the list order: the position of the created event (the first one this script numbers for a new session)
    local cp = old[8]
    if version == 0 then
      cp = tonumber(redis.call('GET', p .. 'pos') or '0') + 1
      redis.call('SADD', p .. 'ids', sid)
      redis.call('ZADD', p .. 'i:all', cp, sid)
      ost, ou, ow, om, odue, odel = false, '', '', '', '', ''
    elseif not cp then
      cp = string.match(redis.call('LINDEX', ekey, 0), '^%[(%d+)')
    end
    if ost ~= st then
      if ost then redis.call('ZREM', p .. 'i:st:' .. ost, sid) end
      redis.call('ZADD', p .. 'i:st:' .. st, cp, sid)
    end
    if ou ~= u then
      if ou and ou ~= '' then redis.call('ZREM', p .. 'i:u:' .. ou, sid) end
      if u ~= '' then redis.call('ZADD', p .. 'i:u:' .. u, cp, sid) end
    end
    if ow ~= w then
      if ow and ow ~= '' then redis.call('ZREM', p .. 'i:w:' .. ow, sid) end
      if w ~= '' then redis.call('ZADD', p .. 'i:w:' .. w, cp, sid) end
    end
    if om ~= m then
      if om and om ~= '' then redis.call('ZREM', p .. 'i:m:' .. om, sid) end
      if m ~= '' then redis.call('ZADD', p .. 'i:m:' .. m, cp, sid) end
    end
    local olive = ost and odel ~= '1'
    local live = del ~= '1'
    if olive ~= live or ost ~= st then
      if olive then redis.call('HINCRBY', p .. 'n', ost, -1) end
      if live then redis.call('HINCRBY', p .. 'n', st, 1) end
    end
    local oactive = olive and ost == 'in_progress' and ou and ou ~= ''
    local active = live and st == 'in_progress' and u ~= ''
    if oactive and (not active or ou ~= u) then redis.call('SREM', p .. 'a:' .. ou, sid) end
    if active and (not oactive or ou ~= u) then redis.call('SADD', p .. 'a:' .. u, sid) end
    if odue ~= due then
      if due == '' then
        redis.call('ZREM', p .. 'due', sid)
      else
        redis.call('ZADD', p .. 'due', due, sid)
        if not odue or odue == '' or tonumber(due) < tonumber(odue) then
          redis.call('PUBLISH', p .. 'deadline', due)
        end
      end
    end
    if kname ~= '' then
      -- the key, for the version this change leaves; one it replaces (expired) leaves its session's set
      local replaced = redis.call('GET', kname)
      if replaced then
        local osid = string.match(replaced, '^[^,]*,([^,]*),')
        redis.call('ZREM', p .. 'kx', osid .. ':' .. kname)
        redis.call('SREM', p .. 'ks:' .. osid, kname)
      end
      redis.call('SET', kname, kexp .. ',' .. sid .. ',' .. (expected + n) .. ',' .. kfp, 'PX', kpx)
      redis.call('ZADD', p .. 'kx', kexp, sid .. ':' .. kname)
      redis.call('SADD', p .. 'ks:' .. sid, kname)
    end
    redis.call('HSET', skey, 'v', expected + n, 'st', st, 'u', u, 'w', w, 'm', m, 'lc', lc, 'c', created,
               'cp', cp, 'due', due, 'exp', exp, 'del', del, 'doc', doc)
    for k = 0, n - 1 do
      local pos = redis.call('INCR', p .. 'pos')
      redis.call('RPUSH', ekey, '[' .. pos .. ',' .. string.sub(ARGV[first + k], 2))
      redis.call('ZADD', p .. 'feed', pos, sid .. ':' .. (expected + k + 1))
    end
    if n > 0 then appended = true end
    if strict then
      redis.call('PUBLISH', p .. 'events', '')
      return {1, expected + n}
    end
  end
end
if appended then redis.call('PUBLISH', p .. 'events', '') end
local nxt = redis.call('ZRANGE', p .. 'due', 0, 0, 'WITHSCORES')
return {flags, nxt[2] or ''}
"""

#: The overdue sessions, earliest first. ARGV: prefix, now (ms), how many.
#: Result: {earliest deadline or "", id, document, id, document, ...}.
CLAIM: Final = r"""
local p = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', p .. 'due', '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local nxt = redis.call('ZRANGE', p .. 'due', 0, 0, 'WITHSCORES')
local out = {nxt[2] or ''}
for _, sid in ipairs(ids) do
  local doc = redis.call('HGET', p .. 's:' .. sid, 'doc')
  if doc then
    out[#out + 1] = sid
    out[#out + 1] = doc
  end
end
return out
"""

#: A page of sessions. ARGV: prefix, the index key to walk (in list order), include deleted ("1"/""), live after
#: (ms or ""), user, workspace, module, lifecycle (as stored, "" for no filter), the creation-time range (ms,
#: "" for no bound: created_after <= c < created_before), the cursor's anchor session id (or ""), "1" for newest
#: first, offset, limit, then the statuses to keep (none: any). Result: the documents, in list order (the
#: index's scores, ``cp``); nothing when the anchor does not exist.
QUERY: Final = r"""
local p = ARGV[1]
local key = p .. ARGV[2]
local deleted = ARGV[3] == '1'
local live_after = tonumber(ARGV[4])
local u, w, m, lc = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local c_low, c_high = tonumber(ARGV[9]), tonumber(ARGV[10])
local anchor, backwards = ARGV[11], ARGV[12] == '1'
local skip, limit = tonumber(ARGV[13]), tonumber(ARGV[14])
local statuses = nil
if #ARGV > 14 then
  statuses = {}
  for k = 15, #ARGV do statuses[ARGV[k]] = true end
end
local low, high = '-inf', '+inf'
if anchor ~= '' then
  local f = redis.call('HMGET', p .. 's:' .. anchor, 'cp', 'v')
  local cp = f[1]
  if not f[2] then return {} end
  if not cp then cp = string.match(redis.call('LINDEX', p .. 'e:' .. anchor, 0) or '', '^%[(%d+)') end
  if not cp then return {} end
  if backwards then high = '(' .. cp else low = '(' .. cp end
end
local out = {}
local start = 0
local chunk = 256
while #out < limit do
  local items
  if backwards then
    items = redis.call('ZREVRANGEBYSCORE', key, high, low, 'LIMIT', start, chunk)
  else
    items = redis.call('ZRANGEBYSCORE', key, low, high, 'LIMIT', start, chunk)
  end
  if #items == 0 then break end
  start = start + #items
  for _, sid in ipairs(items) do
    local f = redis.call('HMGET', p .. 's:' .. sid, 'st', 'u', 'w', 'm', 'due', 'del', 'doc', 'lc', 'c')
    if f[7] and (deleted or f[6] ~= '1') and (statuses == nil or statuses[f[1]])
        and (u == '' or f[2] == u) and (w == '' or f[3] == w) and (m == '' or f[4] == m)
        and (lc == '' or f[8] == lc)
        and (c_low == nil or tonumber(f[9]) >= c_low) and (c_high == nil or tonumber(f[9]) < c_high)
        and (live_after == nil or f[5] == '' or tonumber(f[5]) > live_after) then
      if skip > 0 then
        skip = skip - 1
      else
        out[#out + 1] = f[7]
        if #out >= limit then break end
      end
    end
  end
end
return out
"""

#: Score the list indexes by the list order, once, for data stored while they were scored by creation time (and
#: id): every projected session without ``cp`` gets one, the positions of those sessions' ``created`` events,
#: sorted, handed out in the order the lists had (creation time, then id), so they list as they did. Sets
#: ``P order``; does nothing once it is set. ARGV: prefix. Result: how many sessions were re-scored.
RESCORE: Final = r"""
local p = ARGV[1]
if redis.call('GET', p .. 'order') == '1' then return 0 end
local ids, positions = {}, {}
for _, sid in ipairs(redis.call('ZRANGE', p .. 'i:all', 0, -1)) do
  if not redis.call('HGET', p .. 's:' .. sid, 'cp') then  -- (a session written since has its own)
    local first = redis.call('LINDEX', p .. 'e:' .. sid, 0) or ''
    ids[#ids + 1] = sid
    positions[#ids] = tonumber(string.match(first, '^%[(%d+)') or '0')
  end
end
table.sort(positions)
for k, sid in ipairs(ids) do
  local cp = positions[k]
  local skey = p .. 's:' .. sid
  local f = redis.call('HMGET', skey, 'st', 'u', 'w', 'm')
  redis.call('HSET', skey, 'cp', cp)
  redis.call('ZADD', p .. 'i:all', cp, sid)
  if f[1] then redis.call('ZADD', p .. 'i:st:' .. f[1], cp, sid) end
  if f[2] and f[2] ~= '' then redis.call('ZADD', p .. 'i:u:' .. f[2], cp, sid) end
  if f[3] and f[3] ~= '' then redis.call('ZADD', p .. 'i:w:' .. f[3], cp, sid) end
  if f[4] and f[4] ~= '' then redis.call('ZADD', p .. 'i:m:' .. f[4], cp, sid) end
end
redis.call('SET', p .. 'order', '1')
return #ids
"""

#: The global feed. ARGV: prefix, after (a position), limit, user ("=" + user, or "" for every event), then the
#: event names to keep (none: every event). Result: {id, event, id, event, ...}, in position order.
READ_EVENTS: Final = r"""
local p = ARGV[1]
local after, limit, user = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local names = nil
if #ARGV > 4 then
  names = {}
  for k = 5, #ARGV do names[ARGV[k]] = true end
end
local out = {}
local found = 0
local offset = 0
local chunk = limit
if user ~= '' or names then chunk = 512 end
local owners = {}
while found < limit do
  local items = redis.call('ZRANGEBYSCORE', p .. 'feed', '(' .. after, '+inf', 'LIMIT', offset, chunk)
  if #items == 0 then break end
  offset = offset + #items
  for _, item in ipairs(items) do
    local colon = string.find(item, ':', 1, true)
    local sid = string.sub(item, 1, colon - 1)
    local keep = true
    if user ~= '' then
      local owner = owners[sid]
      if owner == nil then
        owner = redis.call('HGET', p .. 's:' .. sid, 'u') or ''
        owners[sid] = owner
      end
      keep = owner == user
    end
    if keep then
      local text = redis.call('LINDEX', p .. 'e:' .. sid, tonumber(string.sub(item, colon + 1)) - 1)
      if text and (names == nil or names[cjson.decode(text)[4]]) then
        out[#out + 1] = sid
        out[#out + 1] = text
        found = found + 1
        if found >= limit then break end
      end
    end
  end
  if user == '' and names == nil then break end
end
return out
"""

#: Store a feed consumer's position unless the stored one is higher. ARGV: prefix, name, position.
SAVE_CONSUMER: Final = r"""
local key = ARGV[1] .. 'consumers'
local stored = tonumber(redis.call('HGET', key, ARGV[2]) or '0')
if tonumber(ARGV[3]) > stored then redis.call('HSET', key, ARGV[2], ARGV[3]) end
return 0
"""

#: Drop the idempotency keys expired by the manager's clock. ARGV: prefix, now (ms), how many at most.
#: Takes the ``kx`` entries scored at or before now (a key's entry is scored by the expiry it is stored with);
#: deletes each key still stored for that entry's session (one replaced since belongs to another write and
#: stays; one Redis expired itself is gone already) and takes the entry out of ``kx`` and its name out of the
#: session's ``ks``. Result: how many entries were dropped.
DROP_KEYS: Final = r"""
local p = ARGV[1]
local items = redis.call('ZRANGEBYSCORE', p .. 'kx', '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, item in ipairs(items) do
  local colon = string.find(item, ':', 1, true)
  local sid, kname = string.sub(item, 1, colon - 1), string.sub(item, colon + 1)
  local stored = redis.call('GET', kname)
  if stored and string.match(stored, '^[^,]*,([^,]*),') == sid then redis.call('DEL', kname) end
  redis.call('ZREM', p .. 'kx', item)
  redis.call('SREM', p .. 'ks:' .. sid, kname)
end
return #items
"""
