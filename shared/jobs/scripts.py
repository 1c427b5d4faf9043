"""All the Lua of the job protocol (but a tenant's admission at submit, usage.py's). Each state
change is one script: atomic with its event and its counter, so no caller can forget either or
count twice; a page's and a job's end also keep their tenant's usage (`_TENANT`).

A state-change script starts with `_STATE` (shared locals and functions) and gets:
  KEYS[1] the job's record, KEYS[2] its event stream, KEYS[3] the global event stream,
  KEYS[4] the metrics counters, then its own keys from KEYS[5];
  ARGV[1] now (ISO time), ARGV[2] the retention (JOB_TTL_SECONDS), ARGV[3] the global
  stream's cap, ARGV[4] the job id, then its own arguments from ARGV[5].
Every one answers the same three things, {outcome, the status it found, the status it left}
(nil for no record), which store.py decodes once into a `Change`. The outcome is one of
  'applied'  the change was made (and its event written);
  'missing'  the job has no record (expired, deleted, or lost by Redis);
  'held'     another live holder has the job's lease (nothing changed);
  'refused'  the job is not in a status this change applies to (nothing changed).
What each change's event means for the job (the timeline a client sees) is timeline.py's fold:
a script that writes another record field writes it into its event too.
A live record (queued, running) and its events have no TTL; both expire JOB_TTL_SECONDS after
the job's end. A record is never written once it is gone (HSET would resurrect a partial hash
without created_at) and never changed once it ended.
"""

from __future__ import annotations

from shared.jobs import keys

# A tenant's keys, built in Lua from the record's owner (keys.py names them).
_TENANT = f"""
local function tenant_of_job()
  return redis.call('HGET', KEYS[1], 'owner') or '{keys.ANONYMOUS_TENANT}'
end
local usage_prefix, totals = '{keys.USAGE_PREFIX}', '{keys.USAGE_TOTALS}'
local billed_prefix, tenant_prefix = '{keys.USAGE_BILLED_PREFIX}', '{keys.TENANT_PREFIX}'
"""

_STATE = (
    _TENANT
    + """
local job, job_events, events, counters = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, ttl, maxlen, job_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

-- One event in both streams, under the same stream id (so either serves a Last-Event-ID).
local function emit(kind, ...)
  local id = redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*',
                        'kind', kind, 'job_id', job_id, 'at', now, ...)
  redis.call('XADD', job_events, id, 'kind', kind, 'job_id', job_id, 'at', now, ...)
  return id
end

-- The job lives on (queued, running): neither its record nor its events expire.
local function live()
  redis.call('PERSIST', job)
  redis.call('PERSIST', job_events)
end

-- The Idempotency-Key bound to this job (its record names it) lives as long as the record:
-- no TTL while the job does, then the record's retention. A key rebound to another job since
-- is that job's.
local function idempotency_key_expires()
  local idem = redis.call('HGET', job, 'idempotency_key')
  if not idem then return end
  local bound = redis.call('GET', idem)
  if bound and string.sub(bound, 1, #job_id) == job_id then
    redis.call('EXPIRE', idem, ttl)
  end
end

-- The job ends as `status` (succeeded, failed, canceled) with `fields`: its outcome counted,
-- its event written, its retention started (its record's, its events', its key's, its
-- pages billed), and it no longer counts against its tenant's max_queued.
local function finish(status, fields, event_fields)
  redis.call('HSET', job, 'status', status, 'finished_at', now, unpack(fields))
  redis.call('HINCRBY', counters, status, 1)
  emit(status, unpack(event_fields))
  redis.call('EXPIRE', job, ttl)
  redis.call('EXPIRE', job_events, ttl)
  redis.call('EXPIRE', billed_prefix .. job_id, ttl)
  redis.call('ZREM', tenant_prefix .. tenant_of_job(), job_id)
  idempotency_key_expires()
end

-- The one place a job fails: the worker's failures and recovery's worker_lost alike.
local function fail(code, message)
  finish('failed', {'error_code', code, 'error_message', message}, {'code', code})
end

-- The answer of every state change (false stands for no status: Redis answers nil).
local function answer(outcome, found, left)
  return {outcome, found or false, left or false}
end
local function missing() return answer('missing') end

-- A job's side keys (its plan, its pages seen) expire with its record.
local function ends_with(...)
  for _, key in ipairs({...}) do redis.call('EXPIRE', key, ttl) end
end
local function unchanged(outcome, status) return answer(outcome, status, status) end
"""
)

# The record written from ARGV[first..] (field, value, ...). A queued job's record lives however
# long it waits. Its `queued` event carries the page count the API found (a status stream shows
# it).
_CREATE = """
local function create(first)
  redis.call('HSET', job, unpack(ARGV, first))
  redis.call('HINCRBY', counters, 'submitted', 1)
  local total = redis.call('HGET', job, 'pages_total')
  if total then emit('queued', 'pages_total', total) else emit('queued') end
end
"""

# ARGV[5..]: the record's field, value, ...
CREATE = (
    _STATE
    + _CREATE
    + """
create(5)
return answer('applied', nil, 'queued')
"""
)

# Remove a record with its events. One that never ran (its message could not be sent) was
# never submitted: its count and its `queued` event in the global stream go too.
DELETE = (
    _STATE
    + """
local status, attempts = unpack(redis.call('HMGET', job, 'status', 'attempts'))
idempotency_key_expires()
if status == 'queued' and (tonumber(attempts) or 0) == 0 then
  redis.call('HINCRBY', counters, 'submitted', -1)
  for _, entry in ipairs(redis.call('XRANGE', job_events, '-', '+')) do
    redis.call('XDEL', events, entry[1])
  end
end
redis.call('DEL', job, job_events)
if not status then return missing() end
return answer('applied', status, nil)
"""
)

# Take the job's lease and run it (one more attempt), unless another live holder has it.
# KEYS[5] lease, KEYS[6] running set, KEYS[7] the plan, KEYS[8] the pages seen; ARGV[5]
# holder, ARGV[6] lease seconds. Refused once the job ended; held while another live worker
# has it, or once it was planned into ranges (its ranges run it). Progress starts from zero.
CLAIM = (
    _STATE
    + """
local status = redis.call('HGET', job, 'status')
if not status then return missing() end
if status ~= 'queued' and status ~= 'running' then return unchanged('refused', status) end
local holder = redis.call('GET', KEYS[5])
if holder and holder ~= ARGV[5] then return unchanged('held', status) end
-- planned into page ranges: its ranges run it (RANGE_CLAIM), never this message again
if redis.call('EXISTS', KEYS[7]) == 1 then return unchanged('held', status) end
redis.call('SET', KEYS[5], ARGV[5], 'EX', ARGV[6])
redis.call('SADD', KEYS[6], job_id)
local attempt = redis.call('HINCRBY', job, 'attempts', 1)
redis.call('HSET', job, 'status', 'running', 'started_at', now, 'pages_done', 0,
           'pages_failed', 0, 'worker', ARGV[5])
redis.call('DEL', KEYS[8])
live()
emit('running', 'attempt', attempt)
return answer('applied', status, 'running')
"""
)

# Progress of a running job. ARGV[5..]: field, value, ... (pages_total, pages_done; a fetched
# source_url's media_type and size_bytes).
# Refused when the job is not running (canceled meanwhile): untouched.
PROGRESS = (
    _STATE
    + """
local status = redis.call('HGET', job, 'status')
if not status then return missing() end
if status ~= 'running' then return unchanged('refused', status) end
redis.call('HSET', job, unpack(ARGV, 5))
local done, total = unpack(redis.call('HMGET', job, 'pages_done', 'pages_total'))
emit('page', 'pages_done', done or '0', 'pages_total', total or '')
return answer('applied', status, status)
"""
)

# The worker's end of a job. KEYS[5] the plan, KEYS[6] the pages seen; ARGV[5] 'succeeded' or
# 'failed'; for failed ARGV[6] the error code and ARGV[7] its message. Refused when the job
# ended already (canceled). `succeeded` carries pages_failed.
END = (
    _STATE
    + """
local status = redis.call('HGET', job, 'status')
if not status then return missing() end
if status ~= 'queued' and status ~= 'running' then return unchanged('refused', status) end
if ARGV[5] == 'failed' then
  fail(ARGV[6], ARGV[7])
else
  finish('succeeded', {}, {'pages_failed', redis.call('HGET', job, 'pages_failed') or '0'})
end
ends_with(KEYS[5], KEYS[6])
return answer('applied', status, ARGV[5])
"""
)

# Cancel a queued or running job (KEYS[5] the plan, KEYS[6] the pages seen); refused once it
# ended. Each running range sees `canceled` before its next page.
CANCEL = (
    _STATE
    + """
local status = redis.call('HGET', job, 'status')
if not status then return missing() end
if status ~= 'queued' and status ~= 'running' then return unchanged('refused', status) end
finish('canceled', {}, {})
ends_with(KEYS[5], KEYS[6])
return answer('applied', status, 'canceled')
"""
)

# A running job whose lease lapsed (its worker died): back to queued, or failed once it used
# its attempts. KEYS[5] lease, KEYS[6] running set, KEYS[7] requeue set, KEYS[8] the plan,
# KEYS[9] the pages seen (a job planned into ranges has no job lease: its ranges recover on
# their own, RANGE_RECOVER); ARGV[5] max attempts,
# ARGV[6] the error code. Applied: left queued (requeued) or failed; held: a live worker runs
# it; refused: it is no longer running.
RECOVER = (
    _STATE
    + """
local status = redis.call('HGET', job, 'status')
if not status then
  redis.call('SREM', KEYS[6], job_id)
  return missing()
end
if status ~= 'running' then
  redis.call('SREM', KEYS[6], job_id)
  return unchanged('refused', status)
end
if redis.call('EXISTS', KEYS[5]) == 1 then return unchanged('held', status) end
redis.call('SREM', KEYS[6], job_id)
if redis.call('EXISTS', KEYS[8]) == 1 then return unchanged('held', status) end
local attempts = tonumber(redis.call('HGET', job, 'attempts') or '0')
if attempts >= tonumber(ARGV[5]) then
  fail(ARGV[6], 'the worker running this job died ' .. attempts .. ' time(s)')
  ends_with(KEYS[8], KEYS[9])
  return answer('applied', status, 'failed')
end
redis.call('HSET', job, 'status', 'queued', 'pages_done', 0, 'pages_failed', 0, 'requeued_at', now)
live()
redis.call('SADD', KEYS[7], job_id)
emit('requeued', 'attempt', attempts)
return answer('applied', status, 'queued')
"""
)

# One page read (or failed), counted once however often its range runs: KEYS[5] the pages
# seen (a bitmap by page number); ARGV[5] the page number, ARGV[6] 'ok' or 'failed', ARGV[7]
# the failed page's code ('' when ok), ARGV[8] the engine that read it ('' none), ARGV[9] its
# engine seconds, ARGV[10] the usage retention (seconds). Its `page` event carries the page,
# its outcome and the counts; a failed page is also counted for /metrics (`pages_failed`).
# Applied also when the page was counted before (nothing written then); refused when the job
# is not running. The tenant's usage of today counts the page once ever (its own bitmap,
# which a re-run of the whole job does not reset, unlike the pages seen).
PAGE = (
    _STATE
    + """
local status = redis.call('HGET', job, 'status')
if not status then return missing() end
if status ~= 'running' then return unchanged('refused', status) end
if redis.call('SETBIT', KEYS[5], ARGV[5], 1) == 0 then
  local done = redis.call('HINCRBY', job, 'pages_done', 1)
  local failed = tonumber(redis.call('HGET', job, 'pages_failed') or '0')
  local fields = {'page', ARGV[5], 'outcome', ARGV[6]}
  if ARGV[6] == 'failed' then
    failed = redis.call('HINCRBY', job, 'pages_failed', 1)
    redis.call('HINCRBY', counters, 'pages_failed', 1)
    table.insert(fields, 'code')
    table.insert(fields, ARGV[7])
  end
  local total = redis.call('HGET', job, 'pages_total') or ''
  emit('page', 'pages_done', done, 'pages_failed', failed, 'pages_total', total, unpack(fields))
end
if redis.call('SETBIT', billed_prefix .. job_id, ARGV[5], 1) == 0 then
  local tenant = tenant_of_job()
  local day = usage_prefix .. tenant .. ':' .. string.sub(now, 1, 10)
  local outcome = ARGV[6] == 'failed' and 'pages_failed' or 'pages_done'
  redis.call('HINCRBY', day, outcome, 1)
  if ARGV[8] ~= '' and tonumber(ARGV[9]) > 0 then
    redis.call('HINCRBYFLOAT', day, 'seconds:' .. ARGV[8], ARGV[9])
  end
  redis.call('EXPIRE', day, ARGV[10])
  redis.call('HINCRBY', totals, tenant .. '|' .. outcome, 1)
end
return answer('applied', status, status)
"""
)

# Plan a running job into page ranges, once: KEYS[5] its job lease, KEYS[6] the running set,
# KEYS[7] the plan, KEYS[8] range 0's lease, KEYS[9] the running ranges, KEYS[10] the ranges
# to send; ARGV[5] holder (of the job lease; it takes range 0), ARGV[6] lease seconds,
# ARGV[7] the range count, ARGV[8] the range size. The job lease goes (recovery is per range
# from here), range 0 is the planner's, the others wait in the send set until their message
# is sent. Held: planned already, or the job lease is not this holder's.
PLAN = (
    _STATE
    + """
local status = redis.call('HGET', job, 'status')
if not status then return missing() end
if status ~= 'running' then return unchanged('refused', status) end
if redis.call('EXISTS', KEYS[7]) == 1 then return unchanged('held', status) end
if redis.call('GET', KEYS[5]) ~= ARGV[5] then return unchanged('held', status) end
local count = tonumber(ARGV[7])
redis.call('HSET', KEYS[7], 'count', count, 'size', ARGV[8], 'done', 0, 's0', 'running', 'a0', 1,
  'at', ARGV[1])
redis.call('SET', KEYS[8], ARGV[5], 'EX', ARGV[6])
redis.call('SADD', KEYS[9], job_id .. '/0')
for k = 1, count - 1 do redis.call('SADD', KEYS[10], job_id .. '/' .. k) end
redis.call('DEL', KEYS[5])
redis.call('SREM', KEYS[6], job_id)
redis.call('HSET', job, 'ranges', count)
return answer('applied', status, status)
"""
)

# Take range ARGV[5]'s lease to run it: KEYS[5] the plan, KEYS[6] its lease, KEYS[7] the
# running ranges; ARGV[6] holder, ARGV[7] lease seconds. Applied: run its pages (one more
# attempt); 'assemble': it is done, it was the last, and the job is not ended yet (its
# assembler died): assemble; 'done': done already, nothing to do; held: another live holder
# runs it; refused: the job is not running (ended); missing: no record (or no plan).
RANGE_CLAIM = (
    _STATE
    + """
local status = redis.call('HGET', job, 'status')
if not status then return missing() end
if status ~= 'running' then return unchanged('refused', status) end
if redis.call('EXISTS', KEYS[5]) == 0 then return missing() end
local holder = redis.call('GET', KEYS[6])
if holder and holder ~= ARGV[6] then return unchanged('held', status) end
local k = ARGV[5]
local outcome = 'applied'
if redis.call('HGET', KEYS[5], 's' .. k) == 'done' then
  if redis.call('HGET', KEYS[5], 'assembler') ~= k then return unchanged('done', status) end
  outcome = 'assemble'
else
  redis.call('HSET', KEYS[5], 's' .. k, 'running')
end
redis.call('HINCRBY', KEYS[5], 'a' .. k, 1)
redis.call('SET', KEYS[6], ARGV[6], 'EX', ARGV[7])
redis.call('SADD', KEYS[7], job_id .. '/' .. k)
return unchanged(outcome, status)
"""
)

# Range ARGV[5]'s pages are stored: mark it done (once). KEYS[5] the plan, KEYS[6] its lease;
# ARGV[6] holder. 'assemble': it was the last range to finish (exactly one range ever gets
# this); applied: others are still running; held: this holder lost the lease (another run
# owns the range now); refused: the job is not running.
RANGE_DONE = (
    _STATE
    + """
local status = redis.call('HGET', job, 'status')
if not status then return missing() end
if status ~= 'running' then return unchanged('refused', status) end
if redis.call('GET', KEYS[6]) ~= ARGV[6] then return unchanged('held', status) end
local k = ARGV[5]
if redis.call('HGET', KEYS[5], 's' .. k) == 'done' then
  if redis.call('HGET', KEYS[5], 'assembler') == k then return unchanged('assemble', status) end
  return unchanged('applied', status)
end
redis.call('HSET', KEYS[5], 's' .. k, 'done')
local done = redis.call('HINCRBY', KEYS[5], 'done', 1)
if done == tonumber(redis.call('HGET', KEYS[5], 'count')) then
  redis.call('HSET', KEYS[5], 'assembler', k)
  return unchanged('assemble', status)
end
return unchanged('applied', status)
"""
)

# A running range whose lease lapsed (its worker died): KEYS[5] the plan, KEYS[6] its lease,
# KEYS[7] the running ranges, KEYS[8] the ranges to send, KEYS[9] the pages seen; ARGV[5]
# the range, ARGV[6] max attempts, ARGV[7] the error code. Applied: left `running` (the
# range goes back to the send set; a done range whose assembler died too) or `failed` (its
# runs died max attempts times: the job fails worker_lost); held: its lease is alive;
# refused: the job ended, or the range is done and another assembles.
RANGE_RECOVER = (
    _STATE
    + """
local k = ARGV[5]
local member = job_id .. '/' .. k
local status = redis.call('HGET', job, 'status')
if not status then
  redis.call('SREM', KEYS[7], member)
  return missing()
end
if status ~= 'running' then
  redis.call('SREM', KEYS[7], member)
  return unchanged('refused', status)
end
if redis.call('EXISTS', KEYS[6]) == 1 then return unchanged('held', status) end
redis.call('SREM', KEYS[7], member)
local state = redis.call('HGET', KEYS[5], 's' .. k)
if state == 'done' and redis.call('HGET', KEYS[5], 'assembler') ~= k then
  return unchanged('refused', status)
end
local attempts = tonumber(redis.call('HGET', KEYS[5], 'a' .. k) or '0')
if attempts >= tonumber(ARGV[6]) then
  fail(ARGV[7], 'the worker running page range ' .. k .. ' of this job died ' .. attempts ..
       ' time(s)')
  ends_with(KEYS[5], KEYS[9])
  return answer('applied', status, 'failed')
end
if state ~= 'done' then redis.call('HSET', KEYS[5], 's' .. k, 'queued') end
redis.call('SADD', KEYS[8], member)
emit('requeued', 'attempt', attempts, 'range', k)
return answer('applied', status, status)
"""
)

# Lease upkeep (no state change). KEYS[1] lease; ARGV[1] holder, ARGV[2] lease seconds.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS[1] lease, KEYS[2] running set; ARGV[1] holder, ARGV[2] job id (or range member).
RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('SREM', KEYS[2], ARGV[2])
return 1
"""

# Idempotency-Key compare-and-set: ARGV[1] the expected value ('' = absent), ARGV[2] the new
# one, ARGV[3] ttl. With '' expected this is SET NX: of two concurrent identical submits only
# one wins.
IDEMPOTENCY_SWAP = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""

# Bind a claimed Idempotency-Key to its job: KEYS[1] the key, KEYS[2] the job's record; ARGV[1]
# the claim, ARGV[2] the binding, ARGV[3] ttl. While the job is queued or running the key has no
# TTL and the record names it (the job's end gives it the record's retention, _STATE); a job
# that ended already gives it what is left of its record's.
IDEMPOTENCY_BIND = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
local status = redis.call('HGET', KEYS[2], 'status')
if status == 'queued' or status == 'running' then
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('HSET', KEYS[2], 'idempotency_key', KEYS[1])
  return 1
end
local left = redis.call('PTTL', KEYS[2])
if left > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', left)
else
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
end
return 1
"""

# Drop the key only while it still holds this value (ARGV[1]): one's own claim, not another's.
IDEMPOTENCY_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# -- webhook deliveries (shared/jobs/webhooks.py) --
# Each delivery is in WEBHOOKS_DUE (all not final, by due time) and in its lane: a zset like it
# for one API key (owner) and one callback host:port. Two indexes lead to the due lanes: the
# owners (WEBHOOK_OWNERS, each scored by its earliest due delivery) and each owner's hosts
# (webhook_owner_hosts, the same). _LANES' rescore keeps an index entry true after its zset
# changed: the zset's earliest score, or the entry gone with the zset empty.
_LANES = """
local function rescore(index, member, zset)
  local first = redis.call('ZRANGE', zset, 0, 0, 'WITHSCORES')
  if #first == 0 then
    redis.call('ZREM', index, member)
  else
    redis.call('ZADD', index, first[2], member)
  end
end
"""

# Schedule one delivery once: KEYS[1] its hash, KEYS[2] the due zset, KEYS[3] the job's
# deliveries, KEYS[4] the owners index, KEYS[5] its owner's hosts, KEYS[6] its lane; ARGV[1]
# delivery id, ARGV[2] due time, ARGV[3] event time (ms), ARGV[4] ttl of the job's index,
# ARGV[5] owner, ARGV[6] host, ARGV[7..] the hash's field, value, ... 1 scheduled; 0 it existed
# already (an event read twice: a dispatcher died before acknowledging it).
WEBHOOK_SCHEDULE = (
    _LANES
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[4])
redis.call('ZADD', KEYS[6], ARGV[2], ARGV[1])
rescore(KEYS[5], ARGV[6], KEYS[6])
rescore(KEYS[4], ARGV[5], KEYS[5])
return 1
"""
)

# Take up to ARGV[3] due deliveries, owner by owner and host by host (earliest due first): at
# most ARGV[8] of one lane and ARGV[9] of one owner (the owner '', no API key, unbounded), less
# what this sender has in flight there. KEYS[1] the due zset, KEYS[2] the owners index;
# ARGV[1] now, ARGV[2] the lease (a taken delivery is due again then, should its sender die),
# ARGV[4] the delivery hash prefix, ARGV[5] now (ISO), ARGV[6] the owner hosts prefix, ARGV[7]
# the lane prefix (+ owner|host), ARGV[10] the number n of busy lanes, then n times owner,
# host, in flight, then owner, in flight, ... A full owner or lane is passed over, never waited
# on, and only those are: so each scan reaches its count plus the busy ones. Answers {id,
# attempt, ...}; each take counts one attempt in the delivery's hash.
WEBHOOK_TAKE = (
    _LANES
    + """
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[3])
local per_lane, per_owner = tonumber(ARGV[8]), tonumber(ARGV[9])
local lane_busy, busy_lanes_of, owner_busy, busy_owners = {}, {}, {}, 0
local i = 11
for _ = 1, tonumber(ARGV[10]) do
  lane_busy[ARGV[i] .. '|' .. ARGV[i + 1]] = tonumber(ARGV[i + 2])
  busy_lanes_of[ARGV[i]] = (busy_lanes_of[ARGV[i]] or 0) + 1
  i = i + 3
end
while i <= #ARGV do
  owner_busy[ARGV[i]] = tonumber(ARGV[i + 1])
  busy_owners = busy_owners + 1
  i = i + 2
end
local taken, count = {}, 0
local owners = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit + busy_owners)
for _, owner in ipairs(owners) do
  if count >= limit then break end
  local owner_free = limit - count
  if owner ~= '' then
    owner_free = math.min(owner_free, per_owner - (owner_busy[owner] or 0))
  end
  if owner_free > 0 then
    local hosts_key = ARGV[6] .. owner
    local window = owner_free + (busy_lanes_of[owner] or 0)
    local hosts = redis.call('ZRANGEBYSCORE', hosts_key, '-inf', now, 'LIMIT', 0, window)
    for _, host in ipairs(hosts) do
      local name = owner .. '|' .. host
      local lane = ARGV[7] .. name
      local free = math.min(per_lane - (lane_busy[name] or 0), owner_free)
      if free > 0 then
        for _, id in ipairs(redis.call('ZRANGEBYSCORE', lane, '-inf', now, 'LIMIT', 0, free)) do
          local hash = ARGV[4] .. id
          -- gone, or final (by a sender of an older version, which knew no lanes): not again
          if redis.call('EXISTS', hash) == 0 or not redis.call('ZSCORE', KEYS[1], id) then
            redis.call('ZREM', KEYS[1], id)
            redis.call('ZREM', lane, id)
          else
            redis.call('ZADD', KEYS[1], now + ARGV[2], id)
            redis.call('ZADD', lane, now + ARGV[2], id)
            local attempt = redis.call('HINCRBY', hash, 'attempts', 1)
            redis.call('HSET', hash, 'last_attempt_at', ARGV[5])
            table.insert(taken, id)
            table.insert(taken, attempt)
            count = count + 1
            owner_free = owner_free - 1
          end
        end
        rescore(hosts_key, host, lane)
      end
    end
    rescore(KEYS[2], owner, hosts_key)
  end
end
return taken
"""
)

# An attempt's outcome: KEYS[1] the delivery's hash, KEYS[2] the due zset, KEYS[3] the owners
# index; ARGV[1] delivery id, ARGV[2] the attempt it is about (a stale sender's late word is
# dropped), ARGV[3] next due time ('' = final: delivered or gave up), ARGV[4] ttl once final,
# ARGV[5] the owner hosts prefix, ARGV[6] the lane prefix, ARGV[7..] field, value, ...
WEBHOOK_OUTCOME = (
    _LANES
    + """
if redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[1], 'next_attempt_at')
  redis.call('EXPIRE', KEYS[1], ARGV[4])
else
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
end
local host = redis.call('HGET', KEYS[1], 'lane') or ''
if host == '' then return 1 end  -- not adopted yet: WEBHOOK_ADOPT puts it in its lane
local owner = redis.call('HGET', KEYS[1], 'owner') or ''
local hosts_key, lane = ARGV[5] .. owner, ARGV[6] .. owner .. '|' .. host
if ARGV[3] == '' then
  redis.call('ZREM', lane, ARGV[1])
else
  redis.call('ZADD', lane, ARGV[3], ARGV[1])
end
rescore(hosts_key, host, lane)
rescore(KEYS[3], owner, hosts_key)
return 1
"""
)

# A delivery scheduled before lanes existed (no `lane` in its hash) put in its lane: KEYS[1]
# its hash, KEYS[2] the due zset, KEYS[3] the owners index, KEYS[4] its owner's hosts, KEYS[5]
# its lane; ARGV[1] id, ARGV[2] owner, ARGV[3] host. 1 adopted; 0 it had a lane, or is final
# or gone.
WEBHOOK_ADOPT = (
    _LANES
    + """
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'lane') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'lane', ARGV[3])
redis.call('ZADD', KEYS[5], score, ARGV[1])
rescore(KEYS[4], ARGV[3], KEYS[5])
rescore(KEYS[3], ARGV[2], KEYS[4])
return 1
"""
)

# -- the fair share (shared/jobs/fair.py) --
# Work (a job id, or "<job id>/<k>" for a page range) waits in its tenant's lane per queue and
# is released into the Celery queue a few at a time: at most `cap` of one tenant released and
# not yet taken by a worker. A lane: its waiting list, its in-flight zset (released, not
# taken), the queue (also the kombu list its messages go onto, messages.py), its name in
# FAIR_ACTIVE ("<queue>|<tenant>"), now (unix seconds) and the cap. Waiting work keeps its
# Celery message in FAIR_MESSAGES; its release pushes it onto the queue in the same step, so
# released work is sent work. Work kept without a message (admitted so, or by a version that kept
# none) goes to the send outbox (FAIR_SENDS) as it is released, and the script answers it: the
# caller sends it, then takes it out of the outbox (`sent`); the orphan sweep sends what a dead
# caller did not. FAIR_WAITING counts the waiting work per queue, FAIR_ACTIVE names the lanes
# with work waiting.
_FAIR = f"""
local fair_sends, fair_waiting = '{keys.FAIR_SENDS}', '{keys.FAIR_WAITING}'
local fair_active, fair_messages = '{keys.FAIR_ACTIVE}', '{keys.FAIR_MESSAGES}'

local function lane_of(wait, flight, now, cap, queue, name)
  return {{wait = wait, flight = flight, now = tonumber(now), cap = tonumber(cap),
          queue = queue, name = name}}
end

-- the lane of a queue and a tenant (a worker's take knows the job; its record names both)
local function lane_named(queue, tenant, now, cap)
  local wait = '{keys.FAIR_WAIT_PREFIX}' .. queue .. ':' .. tenant
  local flight = '{keys.FAIR_FLIGHT_PREFIX}' .. queue .. ':' .. tenant
  return lane_of(wait, flight, now, cap, queue, queue .. '|' .. tenant)
end

-- Release what fits: the lane's first waiting work into flight, each message pushed onto the
-- queue. Answers the work released without a message (now in the outbox).
local function release(lane)
  if redis.call('LLEN', lane.wait) == 0 then return {{}} end
  local unsent, moved = {{}}, 0
  local room = lane.cap - redis.call('ZCARD', lane.flight)
  while moved < room do
    local member = redis.call('LPOP', lane.wait)
    if not member then break end
    moved = moved + 1
    redis.call('ZADD', lane.flight, lane.now, member)
    local message = redis.call('HGET', fair_messages, member)
    if message then
      redis.call('HDEL', fair_messages, member)
      redis.call('LPUSH', lane.queue, message)
    else
      redis.call('ZADD', fair_sends, lane.now, member)
      table.insert(unsent, member)
    end
  end
  if moved == 0 then return unsent end
  redis.call('HINCRBY', fair_waiting, lane.queue, -moved)
  if redis.call('LLEN', lane.wait) == 0 then redis.call('SREM', fair_active, lane.name) end
  return unsent
end

-- Work joins the lane's list (at the back, or the `front`) with its message ('' none).
local function enlist(lane, member, message, front)
  if front then
    redis.call('LPUSH', lane.wait, member)
  else
    redis.call('RPUSH', lane.wait, member)
  end
  if message ~= '' then redis.call('HSET', fair_messages, member, message) end
end

local function enlisted(lane, count)
  if count > 0 then
    redis.call('HINCRBY', fair_waiting, lane.queue, count)
    redis.call('SADD', fair_active, lane.name)
  end
end

-- New work with its message: while nothing of the tenant waits and it has room, the message
-- goes straight onto the queue (one LPUSH, as without the fair share, and one ZADD); else the
-- work waits its turn. Answers what went to the outbox.
local function admit(lane, member, message)
  local room = lane.cap - redis.call('ZCARD', lane.flight)
  if message ~= '' and room > 0 and redis.call('LLEN', lane.wait) == 0 then
    redis.call('ZADD', lane.flight, lane.now, member)
    redis.call('LPUSH', lane.queue, message)
    return {{}}
  end
  enlist(lane, member, message, false)
  enlisted(lane, 1)
  if room > 0 then return release(lane) end
  return {{}}
end
"""

# Record a new job and admit it to its tenant's lane, one step (FAIR_SHARE=on): the record as
# CREATE writes it; KEYS[5] the lane's waiting list, KEYS[6] its in-flight zset; ARGV[5] now
# (unix seconds), ARGV[6] the cap, ARGV[7] the queue, ARGV[8] the lane's name, ARGV[9] the
# job's message, ARGV[10..] the record's field, value, ... (Work of the tenant's that was
# waiting without a message and goes to the outbox here is the sweep's to send.)
CREATE_QUEUED = (
    _STATE
    + _CREATE
    + _FAIR
    + """
create(10)
admit(lane_of(KEYS[5], KEYS[6], ARGV[5], ARGV[6], ARGV[7], ARGV[8]), job_id, ARGV[9])
return answer('applied', nil, 'queued')
"""
)

# The lane scripts below get KEYS[1] the lane's waiting list, KEYS[2] its in-flight zset;
# ARGV[1] now, ARGV[2] the cap, ARGV[3] the queue, ARGV[4] the lane's name.
_LANE = """
local lane = lane_of(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
"""

# Admit work to the tenant's list, then release what fits; answers what went to the outbox.
# KEYS[3] a set the work is taken from (RANGE_SENDS: a member another process admitted already
# is not admitted twice), or any key with ARGV[6] '0'; ARGV[5] 'front' (a started job's ranges
# go before the tenant's other work) or 'back'; ARGV[7..] the work, in the order it is to run:
# member, message ('' none), ...
FAIR_ADMIT = (
    _FAIR
    + _LANE
    + """
local front = ARGV[5] == 'front'
local first, last, step = 7, #ARGV - 1, 2
if front then first, last, step = #ARGV - 1, 7, -2 end
local added = 0
for i = first, last, step do
  if ARGV[6] == '0' or redis.call('SREM', KEYS[3], ARGV[i]) == 1 then
    enlist(lane, ARGV[i], ARGV[i + 1], front)
    added = added + 1
  end
end
enlisted(lane, added)
return release(lane)
"""
)

# Release what fits (the sweep's top-up); answers what went to the outbox.
FAIR_RELEASE = _FAIR + _LANE + "return release(lane)\n"

# A worker took work ARGV[3] off its queue (its task started): KEYS[1] the job's record (its
# queue and owner name the lane); ARGV[1] now, ARGV[2] the cap. The work is no longer in flight
# and the tenant's next is released. Answers {the queue, what went to the outbox...}; {} when
# the record is gone or names no queue.
FAIR_TAKEN = (
    _FAIR
    + """
local queue, owner = unpack(redis.call('HMGET', KEYS[1], 'queue', 'owner'))
if not queue then return {} end
local lane = lane_named(queue, owner or '', ARGV[1], ARGV[2])
redis.call('ZREM', lane.flight, ARGV[3])
local unsent = release(lane)
table.insert(unsent, 1, queue)
return unsent
"""
)

# A canceled job leaves its tenant's list (the job, and its ranges: members ARGV[5] or
# ARGV[5] .. '/<k>') with their messages; answers how many entries went.
FAIR_FORGET = (
    _FAIR
    + _LANE
    + """
local job_id, removed = ARGV[5], 0
local prefix = job_id .. '/'
for _, member in ipairs(redis.call('LRANGE', lane.wait, 0, -1)) do
  if member == job_id or string.sub(member, 1, #prefix) == prefix then
    removed = removed + redis.call('LREM', lane.wait, 0, member)
    redis.call('HDEL', fair_messages, member)
  end
end
if removed > 0 then redis.call('HINCRBY', fair_waiting, lane.queue, -removed) end
if redis.call('LLEN', lane.wait) == 0 then redis.call('SREM', fair_active, lane.name) end
return removed
"""
)
