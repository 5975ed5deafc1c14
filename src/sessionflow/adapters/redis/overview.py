"""The Redis store's reads for an operator's overview, each one read-only script: the sessions of a window of
deadlines (a range of the ``due`` sorted set, soonest first), the counts per status of what a list's filters
match (the list's most selective index walked, as ``query`` walks it), and the feed's events of some names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final
from uuid import UUID

from sessionflow.adapters.redis.codec import decode_event, decode_session, optional
from sessionflow.adapters.redis.link import READ_EVENTS, RedisLink, Script
from sessionflow.adapters.storage_format import to_millis
from sessionflow.application.ports import Query
from sessionflow.domain.models import Session, SessionEvent

__all__ = ["count_query", "query_deadlines", "read_named_events"]

#: Live sessions whose deadline is after < d <= until, soonest first. ARGV: prefix, after, until (ms), limit,
#: user (as stored: "=" + user, or "" for any). Result: the documents.
_DEADLINES: Final = Script(r"""
local p = ARGV[1]
local low, high, limit, user = '(' .. ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local out = {}
local start = 0
while #out < limit do
  local items = redis.call('ZRANGEBYSCORE', p .. 'due', low, high, 'LIMIT', start, 256)
  if #items == 0 then break end
  start = start + #items
  for _, sid in ipairs(items) do
    local f = redis.call('HMGET', p .. 's:' .. sid, 'u', 'del', 'doc')
    if f[3] and f[2] ~= '1' and (user == '' or f[1] == user) then
      out[#out + 1] = f[3]
      if #out >= limit then break end
    end
  end
end
return out
""")

#: Counts per status of the sessions the filters match. ARGV: prefix, how many index keys follow, the index keys
#: (each walked whole), include deleted ("1"/""), live after (ms or ""), user, workspace, module, lifecycle (as
#: stored), the creation-time range (ms or ""), then the statuses to keep (none: any). Result: {status, n, ...}.
_COUNTS: Final = Script(r"""
local p = ARGV[1]
local n = tonumber(ARGV[2])
local a = 2 + n
local deleted = ARGV[a + 1] == '1'
local live_after = tonumber(ARGV[a + 2])
local u, w, m, lc = ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
local c_low, c_high = tonumber(ARGV[a + 7]), tonumber(ARGV[a + 8])
local statuses = nil
if #ARGV > a + 8 then
  statuses = {}
  for k = a + 9, #ARGV do statuses[ARGV[k]] = true end
end
local counts = {}
for i = 3, 2 + n do
  local start = 0
  while true do
    local items = redis.call('ZRANGE', p .. ARGV[i], start, start + 511)
    if #items == 0 then break end
    start = start + #items
    for _, sid in ipairs(items) do
      local f = redis.call('HMGET', p .. 's:' .. sid, 'st', 'u', 'w', 'm', 'due', 'del', 'lc', 'c')
      if f[1] and (deleted or f[6] ~= '1') and (statuses == nil or statuses[f[1]])
          and (u == '' or f[2] == u) and (w == '' or f[3] == w) and (m == '' or f[4] == m)
          and (lc == '' or f[7] == lc)
          and (c_low == nil or tonumber(f[8]) >= c_low) and (c_high == nil or tonumber(f[8]) < c_high)
          and (live_after == nil or f[5] == '' or tonumber(f[5]) > live_after) then
        counts[f[1]] = (counts[f[1]] or 0) + 1
      end
    end
  end
end
local out = {}
for status, count in pairs(counts) do
  out[#out + 1] = status
  out[#out + 1] = count
end
return out
""")

def query_deadlines(link: RedisLink, after: datetime, until: datetime, limit: int,
                    user_id: str | None) -> list[Session]:
    """Up to ``limit`` live sessions whose deadline is ``after < d <= until``, soonest first."""
    args = [link.prefix, to_millis(after), to_millis(until), int(limit), optional(user_id)]
    client = link.client
    docs = link.run("query_deadlines", lambda: _DEADLINES(client, args))
    return [decode_session(doc) for doc in docs]


def _indexes(query: Query, statuses: list[str]) -> list[str]:
    """The indexes to walk: the most selective filter's (as ``query`` picks it), one per status, or all."""
    if query.user_id is not None:
        return ["i:u:" + optional(query.user_id)]
    if query.workspace_id is not None:
        return ["i:w:" + optional(query.workspace_id)]
    if query.module_name is not None:
        return ["i:m:" + optional(query.module_name)]
    if statuses:
        return ["i:st:" + status for status in statuses]
    return ["i:all"]


def count_query(link: RedisLink, query: Query) -> dict[str, int]:
    """How many sessions match the filters of ``query``, per status (its page and order ignored)."""
    statuses = sorted(str(s) for s in query.status) if query.status is not None else []
    if query.status is not None and not statuses:
        return {}
    indexes = _indexes(query, statuses)
    low, high = query.created_after, query.created_before
    args: list[Any] = [link.prefix, len(indexes), *indexes, "1" if query.include_deleted else "",
                       "" if query.live_after is None else to_millis(query.live_after), optional(query.user_id),
                       optional(query.workspace_id), optional(query.module_name), optional(query.lifecycle),
                       "" if low is None else to_millis(low), "" if high is None else to_millis(high), *statuses]
    client = link.client
    flat = link.run("count_query", lambda: _COUNTS(client, args))
    return {str(flat[k]): int(flat[k + 1]) for k in range(0, len(flat), 2)}


def read_named_events(link: RedisLink, after: int, limit: int, names: frozenset[str],
                      user_id: str | None) -> list[SessionEvent]:
    """Up to ``limit`` events named in ``names`` with a feed position above ``after``, in position order."""
    if limit <= 0 or not names:
        return []
    args = [link.prefix, int(after), int(limit), optional(user_id), *sorted(names)]
    client = link.client
    flat = link.run("read_named_events", lambda: READ_EVENTS(client, args))
    return [decode_event(flat[k + 1], UUID(flat[k])) for k in range(0, len(flat), 2)]
