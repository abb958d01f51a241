//! Byte counts as people read them, for messages: the lowest layer, so that any module (an
//! error's message, the startup lines) can use it without reaching up into the store.

/// A byte count for people: `12.0 GiB`, `512.0 MiB`, `900 bytes`.
pub fn human(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, unit) in UNITS {
        if bytes >= size {
            return format!("{:.1} {unit}", bytes as f64 / size as f64);
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_as_people_write_them() {
        assert_eq!(human(3 << 30), "3.0 GiB");
        assert_eq!(human(1536 << 10), "1.5 MiB");
        assert_eq!(human(900), "900 bytes");
    }
}
