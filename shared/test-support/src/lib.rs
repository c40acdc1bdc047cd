//! What the tests of every crate in the workspace share: the settings `.ci/run` provides
//! (the Redis and fake-gcs-server it starts), free ports, child processes stopped on drop,
//! and private `redis-server`s for outage and password tests.

mod env;
mod process;
mod redis;

pub use env::{redis_url, required_env, storage_emulator, unique_prefix};
pub use process::{Killed, file_names, free_port, wait_for_port};
pub use redis::RedisServer;
