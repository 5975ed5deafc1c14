"""The purge of closed sessions on Redis: one Lua script per batch, so a batch is removed atomically.

See :mod:`sessionflow.application.retention` for what is purged and why, and ``scripts.py`` for the key
layout. For each session the script compares the stored version with the one the purge read (a session changed
meanwhile is skipped) and removes the session's keys (``s:<id>``, ``e:<id>``) and every index entry: ``ids``,
``i:all``, ``i:st:<status>``, ``i:u:``/``i:w:``/``i:m:``, ``due``, ``a:<user>``, its ``feed`` members and its
count in ``n``; and its idempotency keys: each key named in ``ks:<id>`` that is still stored for this session
(one a later write replaced is that write's and stays), its ``kx`` entry and ``ks:<id>`` itself. The feed
counter ``pos`` is left alone (``INCR`` never hands a number out twice), as are the consumers' positions; the
session holding the feed's newest event is kept, as on every store.
"""

from __future__ import annotations

from typing import Final

__all__ = ["PURGE"]

#: Remove sessions. ARGV: prefix, the number of sessions, then per session: id, expected version.
#: Result: the ids removed.
PURGE: Final = r"""
local p = ARGV[1]
local count = tonumber(ARGV[2])
local newest = ''
local last = redis.call('ZRANGE', p .. 'feed', -1, -1)
if last[1] then
  newest = string.sub(last[1], 1, string.find(last[1], ':', 1, true) - 1)
end
local out = {}
for c = 0, count - 1 do
  local sid, expected = ARGV[3 + 2 * c], tonumber(ARGV[4 + 2 * c])
  local skey = p .. 's:' .. sid
  local f = redis.call('HMGET', skey, 'v', 'st', 'u', 'w', 'm', 'del')
  if sid ~= newest and tonumber(f[1]) == expected then
    local st, u, w, m, del = f[2], f[3], f[4], f[5], f[6]
    redis.call('SREM', p .. 'ids', sid)
    redis.call('ZREM', p .. 'i:all', sid)
    redis.call('ZREM', p .. 'due', sid)
    if st then
      redis.call('ZREM', p .. 'i:st:' .. st, sid)
      if del ~= '1' then redis.call('HINCRBY', p .. 'n', st, -1) end
    end
    if u and u ~= '' then
      redis.call('ZREM', p .. 'i:u:' .. u, sid)
      redis.call('SREM', p .. 'a:' .. u, sid)
    end
    if w and w ~= '' then redis.call('ZREM', p .. 'i:w:' .. w, sid) end
    if m and m ~= '' then redis.call('ZREM', p .. 'i:m:' .. m, sid) end
    local members = {}
    for v = 1, expected do
      members[#members + 1] = sid .. ':' .. v
      if #members == 1000 or v == expected then
        redis.call('ZREM', p .. 'feed', unpack(members))
        members = {}
      end
    end
    local kset = p .. 'ks:' .. sid
    for _, kname in ipairs(redis.call('SMEMBERS', kset)) do
      local stored = redis.call('GET', kname)
      if stored and string.match(stored, '^[^,]*,([^,]*),') == sid then redis.call('DEL', kname) end
      redis.call('ZREM', p .. 'kx', sid .. ':' .. kname)
    end
    redis.call('DEL', skey, p .. 'e:' .. sid, kset)
    out[#out + 1] = sid
  end
end
return out
"""
