//! Byte counts written for people, in decimal (`12.6 MB`, as disk sizes are sold) or binary
//! (`1.5 MiB`) units.

/// Bytes in decimal units: "12.6 MB".
pub fn decimal_bytes(n: u64) -> String {
    scaled(n, 1000.0, ["B", "kB", "MB", "GB", "TB"])
}

/// Bytes in binary units: "1.5 MiB".
pub fn binary_bytes(n: u64) -> String {
    scaled(n, 1024.0, ["B", "KiB", "MiB", "GiB", "TiB"])
}

fn scaled(n: u64, step: f64, units: [&str; 5]) -> String {
    let mut value = n as f64;
    let mut unit = 0;
    while value >= step && unit + 1 < units.len() {
        value /= step;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", units[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_units() {
        assert_eq!(decimal_bytes(12_582_912), "12.6 MB");
        assert_eq!(decimal_bytes(999), "999 B");
        assert_eq!(binary_bytes(1023), "1023 B");
        assert_eq!(binary_bytes(1536), "1.5 KiB");
    }
}
