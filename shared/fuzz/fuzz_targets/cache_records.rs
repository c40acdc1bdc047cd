//! The binary records read back from Redis (features, faces). A corrupted or foreign value
//! must be refused, never panic or over-allocate; what is accepted must re-encode to the
//! same bytes (the format has one encoding per record).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ongi_shared::analysis::FeatureRecord;
use ongi_shared::pipeline::face_record;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = FeatureRecord::decode(data) {
        let again = FeatureRecord::decode(&record.encode()).expect("a re-encoded record decodes");
        assert_eq!(again.encode(), record.encode());
    }
    if let Ok(faces) = face_record::decode(data) {
        let again = face_record::decode(&face_record::encode(&faces)).expect("re-encoded faces decode");
        assert_eq!(face_record::encode(&again), face_record::encode(&faces));
    }
});
