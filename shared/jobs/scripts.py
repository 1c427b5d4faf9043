"""All the Lua of the job protocol. Each state change is one script: atomic with its event and
its counter, so no caller can forget either or count twice.

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

_STATE = """
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

-- The job ends as `status` (succeeded, failed, canceled) with `fields`: its outcome counted,
-- its event written, its retention started.
local function finish(status, fields, event_fields)
  redis.call('HSET', job, 'status', status, 'finished_at', now, unpack(fields))
  redis.call('HINCRBY', counters, status, 1)
  emit(status, unpack(event_fields))
  redis.call('EXPIRE', job, ttl)
  redis.call('EXPIRE', job_events, ttl)
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
local function unchanged(outcome, status) return answer(outcome, status, status) end
"""

# ARGV[5..]: the record's field, value, ... A queued job's record lives however long it waits.
# Its `queued` event carries the page count the API found (a status stream shows it).
CREATE = (
    _STATE
    + """
redis.call('HSET', job, unpack(ARGV, 5))
redis.call('HINCRBY', counters, 'submitted', 1)
local total = redis.call('HGET', job, 'pages_total')
if total then emit('queued', 'pages_total', total) else emit('queued') end
return answer('applied', nil, 'queued')
"""
)

# Remove a record with its events. One that never ran (its message could not be sent) was
# never submitted: its count and its `queued` event in the global stream go too.
DELETE = (
    _STATE
    + """
local status, attempts = unpack(redis.call('HMGET', job, 'status', 'attempts'))
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
# KEYS[5] lease, KEYS[6] running set; ARGV[5] holder, ARGV[6] lease seconds.
# Refused once the job ended; held while another live worker has it.
CLAIM = (
    _STATE
    + """
local status = redis.call('HGET', job, 'status')
if not status then return missing() end
if status ~= 'queued' and status ~= 'running' then return unchanged('refused', status) end
local holder = redis.call('GET', KEYS[5])
if holder and holder ~= ARGV[5] then return unchanged('held', status) end
redis.call('SET', KEYS[5], ARGV[5], 'EX', ARGV[6])
redis.call('SADD', KEYS[6], job_id)
local attempt = redis.call('HINCRBY', job, 'attempts', 1)
redis.call('HSET', job, 'status', 'running', 'started_at', now, 'pages_done', 0,
           'worker', ARGV[5])
live()
emit('running', 'attempt', attempt)
return answer('applied', status, 'running')
"""
)

# Progress of a running job. ARGV[5..]: field, value, ... (pages_total, pages_done).
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

# The worker's end of a job. ARGV[5] 'succeeded' or 'failed'; for failed ARGV[6] the error
# code and ARGV[7] its message. Refused when the job ended already (canceled).
END = (
    _STATE
    + """
local status = redis.call('HGET', job, 'status')
if not status then return missing() end
if status ~= 'queued' and status ~= 'running' then return unchanged('refused', status) end
if ARGV[5] == 'failed' then fail(ARGV[6], ARGV[7]) else finish('succeeded', {}, {}) end
return answer('applied', status, ARGV[5])
"""
)

# Cancel a queued or running job; refused once it ended.
CANCEL = (
    _STATE
    + """
local status = redis.call('HGET', job, 'status')
if not status then return missing() end
if status ~= 'queued' and status ~= 'running' then return unchanged('refused', status) end
finish('canceled', {}, {})
return answer('applied', status, 'canceled')
"""
)

# A running job whose lease lapsed (its worker died): back to queued, or failed once it used
# its attempts. KEYS[5] lease, KEYS[6] running set, KEYS[7] requeue set; ARGV[5] max attempts,
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
local attempts = tonumber(redis.call('HGET', job, 'attempts') or '0')
if attempts >= tonumber(ARGV[5]) then
  fail(ARGV[6], 'the worker running this job died ' .. attempts .. ' time(s)')
  return answer('applied', status, 'failed')
end
redis.call('HSET', job, 'status', 'queued', 'pages_done', 0)
live()
redis.call('SADD', KEYS[7], job_id)
emit('requeued', 'attempt', attempts)
return answer('applied', status, 'queued')
"""
)

# Lease upkeep (no state change). KEYS[1] lease; ARGV[1] holder, ARGV[2] lease seconds.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS[1] lease, KEYS[2] running set; ARGV[1] holder, ARGV[2] job id.
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

# Drop the key only while it still holds this value (ARGV[1]): one's own claim, not another's.
IDEMPOTENCY_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# -- webhook deliveries (shared/jobs/webhooks.py) --
# Schedule one delivery once: KEYS[1] its hash, KEYS[2] the due zset, KEYS[3] the job's
# deliveries; ARGV[1] delivery id, ARGV[2] due time, ARGV[3] event time (ms), ARGV[4] ttl of
# the job's index, ARGV[5..] the hash's field, value, ... 1 scheduled; 0 it existed already
# (an event read twice: a dispatcher died before acknowledging it).
WEBHOOK_SCHEDULE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[4])
return 1
"""

# Take up to ARGV[3] due deliveries: KEYS[1] the due zset; ARGV[1] now, ARGV[2] the lease
# (a taken delivery is due again then, should its sender die). Answers {id, attempt, ...};
# each take counts one attempt in the delivery's hash (KEYS: built from ARGV[4], the prefix).
WEBHOOK_TAKE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local taken = {}
for _, id in ipairs(due) do
  local hash = ARGV[4] .. id
  if redis.call('EXISTS', hash) == 0 then
    redis.call('ZREM', KEYS[1], id)
  else
    redis.call('ZADD', KEYS[1], ARGV[1] + ARGV[2], id)
    local attempt = redis.call('HINCRBY', hash, 'attempts', 1)
    redis.call('HSET', hash, 'last_attempt_at', ARGV[5])
    table.insert(taken, id)
    table.insert(taken, attempt)
  end
end
return taken
"""

# An attempt's outcome: KEYS[1] the delivery's hash, KEYS[2] the due zset; ARGV[1] delivery
# id, ARGV[2] the attempt it is about (a stale sender's late word is dropped), ARGV[3] next
# due time ('' = final: delivered or gave up), ARGV[4] ttl once final, ARGV[5..] field, value.
WEBHOOK_OUTCOME = """
if redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[1], 'next_attempt_at')
  redis.call('EXPIRE', KEYS[1], ARGV[4])
else
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
end
return 1
"""
