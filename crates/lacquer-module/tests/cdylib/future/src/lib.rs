//! What a module built against a future ABI major looks like to this
//! Lacquer: a descriptor whose head says `ABI_MAJOR + 1`.

use lacquer_abi::*;

const SPEC: &str = "{\"name\": \"future\", \"abi\": [2, 0]}\0";

/// The descriptor.
#[no_mangle]
pub static LACQUER_MODULE_DESCRIPTOR: ModuleDescriptor = ModuleDescriptor {
    magic: DESCRIPTOR_MAGIC,
    abi_major: ABI_MAJOR + 1,
    abi_minor: 0,
    api_level: ApiLevel::Stable as u32,
    reserved: 0,
    name: b"future\0".as_ptr(),
    spec: SPEC.as_ptr(),
    build_hash: std::ptr::null(),
    spec_len: SPEC.len() - 1,
    entries: std::ptr::null(),
    n_entries: 0,
};
