//! `--print-capabilities`: the JSON a vhost-user backend prints for libvirt and other
//! management tools (QEMU docs/interop/vhost-user.rst, "Backend program conventions"), and
//! the backend descriptor installed in `/usr/share/qemu/vhost-user/` that points them at the
//! binary (generated from the same constants by `cargo xtask gen`).

/// The device type.
pub const TYPE: &str = "fs";

/// Optional features, as virtiofsd names them: "migrate-precopy" means the backend can be
/// live-migrated (dirty-page log and device state; libvirt migrates a VM with a virtio-fs
/// share only when it is listed); "separate-options" means options are given as separate
/// flags (`--shared-dir DIR`), not only as `-o source=DIR`.
pub const FEATURES: &[&str] = &["migrate-precopy", "separate-options"];

/// The capabilities as pretty-printed JSON, in the layout virtiofsd prints.
pub fn json() -> String {
    let mut out = format!("{{\n  \"type\": {}", json_string(TYPE));
    if !FEATURES.is_empty() {
        out.push_str(",\n  \"features\": [\n");
        let items: Vec<String> = FEATURES
            .iter()
            .map(|f| format!("    {}", json_string(f)))
            .collect();
        out.push_str(&items.join(",\n"));
        out.push_str("\n  ]");
    }
    out.push_str("\n}\n");
    out
}

/// What the descriptor says the backend is.
pub const DESCRIPTION: &str = "vhostfsd: vhost-user virtio-fs daemon";

/// The vhost-user backend descriptor (QEMU `docs/interop/vhost-user.json`,
/// `VhostUserBackend`) for the daemon installed at `binary`. It carries the type and the
/// binary only: libvirt runs `binary --print-capabilities` for the features.
pub fn descriptor_json(binary: &str) -> String {
    format!(
        "{{\n  \"description\": {},\n  \"type\": {},\n  \"binary\": {}\n}}\n",
        json_string(DESCRIPTION),
        json_string(TYPE),
        json_string(binary)
    )
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_virtiofsd_layout() {
        assert_eq!(
            json(),
            "{\n  \"type\": \"fs\",\n  \"features\": [\n    \"migrate-precopy\",\n    \"separate-options\"\n  ]\n}\n"
        );
    }

    #[test]
    fn descriptor_follows_qemu_schema() {
        assert_eq!(
            descriptor_json("/usr/libexec/vhostfsd"),
            "{\n  \"description\": \"vhostfsd: vhost-user virtio-fs daemon\",\n  \
             \"type\": \"fs\",\n  \"binary\": \"/usr/libexec/vhostfsd\"\n}\n"
        );
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
