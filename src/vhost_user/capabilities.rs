//! `--print-capabilities`: the JSON a vhost-user backend prints for libvirt and other
//! management tools (QEMU docs/interop/vhost-user.rst, "Backend program conventions").

/// The device type.
pub const TYPE: &str = "fs";

/// Optional features, as virtiofsd names them: "migrate-precopy" means the backend can be
/// live-migrated (dirty-page log and device state; libvirt migrates a VM with a virtio-fs
/// share only when it is listed); "separate-options" means options are given as separate
/// flags (`--shared-dir DIR`), not only as `-o source=DIR`.
pub const FEATURES: &[&str] = &["migrate-precopy", "separate-options"];

/// The capabilities as pretty-printed JSON, in the layout virtiofsd prints.
pub fn json() -> String {
    let mut out = format!("{{\n  \"type\": \"{TYPE}\"");
    if !FEATURES.is_empty() {
        out.push_str(",\n  \"features\": [\n");
        let items: Vec<String> = FEATURES.iter().map(|f| format!("    \"{f}\"")).collect();
        out.push_str(&items.join(",\n"));
        out.push_str("\n  ]");
    }
    out.push_str("\n}\n");
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
}
