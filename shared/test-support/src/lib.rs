//! What the tests of every crate in the workspace share: the settings `.ci/run` provides
//! (the Redis and fake-gcs-server it starts), free ports, child processes stopped on drop,
//! private `redis-server`s and fake-gcs-servers of a test's own, a tiny HTTP file server, and
//! photos made at test time with the EXIF a camera writes.

mod env;
mod fake_gcs;
mod http;
mod photos;
mod process;
mod redis;

pub use env::{redis_url, required_env, storage_emulator, unique_prefix};
pub use fake_gcs::start_fake_gcs;
pub use http::serve_files;
pub use photos::{ExifFields, exif_block, jpeg_with_exif};
pub use process::{Killed, file_names, free_port, wait_for_port};
pub use redis::RedisServer;
