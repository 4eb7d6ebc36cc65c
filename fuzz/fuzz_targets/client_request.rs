#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cloudburst::fuzz::Target::ClientRequest.run(data));
