//! The queue's state changes as Lua scripts, so each is one atomic step on the server.
//!
//! Why scripts rather than MULTI: every worker-side change first checks that the caller
//! still owns the stream entry (`XPENDING … consumer`). A worker that lost its job to a
//! reclaim (it stalled past the idle timeout) must not finish, fail or heartbeat it: that is
//! what makes a reclaimed job finish exactly once. The check and the change must be one step.
//!
//! The worker-side scripts share one layout ([`super::WorkerQueue`] builds it in one place):
//! KEYS[1] the job stream, KEYS[2] the job's hash, KEYS[3] the dead-letter stream; ARGV[1]
//! the consumer group, ARGV[2] the consumer, ARGV[3] the entry id, ARGV[4] the job id,
//! ARGV[5] now (ms); each script's own arguments follow from ARGV[6].

use std::sync::LazyLock;

use redis::Script;

/// Submit: idempotency key, depth limit, the hash, the stream entry.
/// KEYS: stream, job, idempotency key. ARGV: group, job id, max depth, ttl ms, has key (1/0),
/// created ms, then field/value pairs. Answers `{'queued', id}`, `{'existing', id}` or
/// `{'full', depth}`.
///
/// The job's hash gets no TTL here: Memorystore evicts keys that carry a TTL when memory is
/// full (`volatile-lru`, terraform/redis.tf), and a queued or running job must never go with
/// the feature records. It gets the job TTL when it ends (COMPLETE, FAIL, START's dead
/// letter). The idempotency key does carry the TTL: losing it can only let a repeated
/// submission queue a second job, never lose one.
pub static SUBMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if ARGV[5] == '1' then
  local existing = redis.call('GET', KEYS[3])
  if existing then return {'existing', existing} end
end
local depth = redis.call('XLEN', KEYS[1])
if depth >= tonumber(ARGV[3]) then return {'full', tostring(depth)} end
redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], 'status', 'queued', 'attempts', '0', 'created_ms', ARGV[6], unpack(fields))
if ARGV[5] == '1' then redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[4]) end
redis.call('XADD', KEYS[1], '*', 'job', ARGV[2])
return {'queued', ARGV[2]}
",
    )
});

/// Start an attempt on a claimed entry. ARGV[6] max attempts, ARGV[7] ttl ms, ARGV[8] the
/// dead-letter stream's length cap. Answers `{'started', attempt}`, `{'lost'}`,
/// `{'gone'}` (the job's hash is missing), `{'finished'}` (already done or failed) or
/// `{'dead', why}` (its attempts were spent by workers that died). A running job's hash has
/// no TTL (`PERSIST`, for a hash queued by an older version that set one at submission).
pub static START: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local owned = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #owned == 0 then return {'lost'} end
local function drop()
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
  redis.call('XDEL', KEYS[1], ARGV[3])
end
if redis.call('EXISTS', KEYS[2]) == 0 then drop() return {'gone'} end
local status = redis.call('HGET', KEYS[2], 'status')
if status == 'done' or status == 'failed' then drop() return {'finished'} end
local attempts = tonumber(redis.call('HGET', KEYS[2], 'attempts') or '0')
if status == 'running' then
  local who = redis.call('HGET', KEYS[2], 'worker') or 'unknown'
  redis.call('HSET', KEYS[2], 'error', 'attempt ' .. attempts .. ' was abandoned: worker ' .. who .. ' stopped sending heartbeats')
end
if attempts >= tonumber(ARGV[6]) then
  local why = 'gave up after ' .. attempts .. ' attempts; last error: ' .. (redis.call('HGET', KEYS[2], 'error') or 'none')
  redis.call('HSET', KEYS[2], 'status', 'failed', 'error', why, 'finished_ms', ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
  redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[8], '*', 'job', ARGV[4], 'error', why, 'attempts', tostring(attempts))
  drop()
  return {'dead', why}
end
redis.call('PERSIST', KEYS[2])
redis.call('HINCRBY', KEYS[2], 'attempts', 1)
redis.call('HSET', KEYS[2], 'status', 'running', 'started_ms', ARGV[5], 'heartbeat_ms', ARGV[5], 'worker', ARGV[2])
return {'started', tostring(attempts + 1)}
",
    )
});

/// Heartbeat: resets the entry's idle time (XCLAIM JUSTID by its owner does not count as
/// a delivery) so no other worker reclaims it. Answers 1, or 0 when the entry is no longer
/// the caller's.
pub static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local owned = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #owned == 0 then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
redis.call('HSET', KEYS[2], 'heartbeat_ms', ARGV[5])
return 1
",
    )
});

/// Done. ARGV[6] the result object, ARGV[7] ttl ms. Answers 1, or 0 when the entry is no
/// longer the caller's (nothing is changed).
pub static COMPLETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local owned = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #owned == 0 then return 0 end
redis.call('HSET', KEYS[2], 'status', 'done', 'finished_ms', ARGV[5], 'result_object', ARGV[6])
redis.call('HDEL', KEYS[2], 'error')
redis.call('PEXPIRE', KEYS[2], ARGV[7])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
return 1
",
    )
});

/// A failed attempt: back on the stream, or to the dead-letter stream once the attempts are
/// spent. ARGV[6] the error, ARGV[7] max attempts, ARGV[8] ttl ms, ARGV[9] the dead-letter
/// stream's length cap. Answers `{'retry'}`, `{'dead'}` or `{'lost'}`.
pub static FAIL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local owned = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #owned == 0 then return {'lost'} end
local attempts = tonumber(redis.call('HGET', KEYS[2], 'attempts') or '0')
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
if attempts >= tonumber(ARGV[7]) then
  redis.call('HSET', KEYS[2], 'status', 'failed', 'error', ARGV[6], 'finished_ms', ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[8])
  redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[9], '*', 'job', ARGV[4], 'error', ARGV[6], 'attempts', tostring(attempts))
  return {'dead'}
end
redis.call('HSET', KEYS[2], 'status', 'queued', 'error', ARGV[6])
redis.call('XADD', KEYS[1], '*', 'job', ARGV[4])
return {'retry'}
",
    )
});

/// Give a job back unfinished (the worker is stopping): the attempt is not counted.
/// Answers 1, or 0 when not owned.
pub static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local owned = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #owned == 0 then return 0 end
redis.call('HINCRBY', KEYS[2], 'attempts', -1)
redis.call('HSET', KEYS[2], 'status', 'queued')
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
redis.call('XADD', KEYS[1], '*', 'job', ARGV[4])
return 1
",
    )
});

/// Forget the group's consumers that hold nothing and have not been heard from for a while:
/// each worker process joins under a name of its own (host, pid, random), so without this the
/// group's consumer list grows by one name per restart, for ever.
/// KEYS[1] the job stream. ARGV[1] the group, ARGV[2] the calling consumer, ARGV[3] the idle
/// time (ms) past which a consumer without pending entries is removed, ARGV[4] `1` to remove
/// the caller too when it holds nothing (a worker that stops). Answers the number removed.
///
/// One script, so a consumer cannot claim an entry between the check and `DELCONSUMER` (which
/// would orphan the entry: a deleted consumer's pending entries cannot be acknowledged). A
/// live worker reads with `XREADGROUP … BLOCK` every few seconds, so its idle time stays far
/// below the threshold; one removed anyway is recreated by its next read.
pub static PRUNE_CONSUMERS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if not ok then return 0 end
local removed = 0
for _, c in ipairs(consumers) do
  local fields = {}
  for i = 1, #c, 2 do fields[c[i]] = c[i + 1] end
  local name, pending, idle = fields['name'], tonumber(fields['pending']), tonumber(fields['idle'])
  local stale = idle >= tonumber(ARGV[3]) and name ~= ARGV[2]
  local leaving = ARGV[4] == '1' and name == ARGV[2]
  if pending == 0 and (stale or leaving) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    removed = removed + 1
  end
end
return removed
",
    )
});
