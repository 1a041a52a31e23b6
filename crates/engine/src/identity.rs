//! Who this device is: the device ID codec (`peerfold-proto`) and the certificate on disk
//! (`peerfold-net`), re-exported, plus the QR codes the CLI and the web UI draw of an ID or an
//! invitation link.

pub use peerfold_net::identity::*;

// ---------------------------------------------------------------------------------------------
// QR codes
// ---------------------------------------------------------------------------------------------

fn qr_code(id: &DeviceId) -> Option<qrcode::QrCode> {
    // 63 upper-case alphanumeric characters always fit (version 4 at level M).
    qrcode::QrCode::with_error_correction_level(id.to_string(), qrcode::EcLevel::M).ok()
}

/// The device ID as a QR code drawn with Unicode half blocks for a terminal (dark-on-light with
/// a quiet zone).
///
/// Light modules and the 4-module quiet zone are drawn as filled blocks and dark modules as
/// blanks, so on the usual light-text-on-dark-background terminal the code appears dark on
/// light. Each line covers two module rows; lines are joined with `\n` (no trailing newline).
pub fn qr_terminal(id: &DeviceId) -> String {
    use qrcode::render::unicode::Dense1x2;
    qr_code(id).map_or_else(String::new, |code| {
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build()
    })
}

/// The device ID as a QR code in SVG (for the web UI later): black on white, with a quiet zone.
pub fn qr_svg(id: &DeviceId) -> String {
    use qrcode::render::svg;
    qr_code(id).map_or_else(String::new, |code| {
        code.render::<svg::Color<'_>>()
            .min_dimensions(200, 200)
            .dark_color(svg::Color("#000000"))
            .light_color(svg::Color("#ffffff"))
            .quiet_zone(true)
            .build()
    })
}

/// Any text (an invitation link) as a QR code drawn for a terminal, as [`qr_terminal`] draws
/// the device ID; empty if the text is too long for a QR code.
pub fn qr_text_terminal(text: &str) -> String {
    use qrcode::render::unicode::Dense1x2;
    qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::L).map_or_else(
        |_| String::new(),
        |code| {
            code.render::<Dense1x2>()
                .dark_color(Dense1x2::Light)
                .light_color(Dense1x2::Dark)
                .quiet_zone(true)
                .build()
        },
    )
}

/// Any text as a QR code in SVG, as [`qr_svg`] draws the device ID.
pub fn qr_text_svg(text: &str) -> String {
    use qrcode::render::svg;
    qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::L).map_or_else(
        |_| String::new(),
        |code| {
            code.render::<svg::Color<'_>>()
                .min_dimensions(200, 200)
                .dark_color(svg::Color("#000000"))
                .light_color(svg::Color("#ffffff"))
                .quiet_zone(true)
                .build()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    macro_rules! vector_path {
        ($name:literal) => {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors/bep/", $name)
        };
    }

    fn vector_cert(path: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn qr_terminal_has_the_dimensions_of_a_version_4_code() {
        let id = DeviceId::from_cert_der(&vector_cert(vector_path!("syncthing_1.19.2_cert_M4OZKWP.pem")));
        let code = qr_code(&id).unwrap();
        // 63 alphanumeric chars at level M need version 4 (capacity 90; version 3 holds 61).
        assert_eq!(code.version(), qrcode::Version::Normal(4));
        assert_eq!(code.width(), 33);

        let text = qr_terminal(&id);
        let lines: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
        let size: usize = 33 + 2 * 4; // modules plus a 4-module quiet zone on each side
        assert_eq!(lines.len(), size.div_ceil(2)); // two module rows per line: 21
        assert!(lines.iter().all(|l| l.len() == size)); // 41 columns each

        // Reconstruct: light modules (and the quiet zone) are filled, dark modules blank.
        let colors = code.to_colors();
        let light = |x: usize, y: usize| {
            if !(4..37).contains(&x) || !(4..37).contains(&y) {
                return true;
            }
            colors[(y - 4) * 33 + (x - 4)] == qrcode::Color::Light
        };
        for (row, line) in lines.iter().enumerate() {
            for (x, &ch) in line.iter().enumerate() {
                let top = light(x, 2 * row);
                let bottom = 2 * row + 1 < size && light(x, 2 * row + 1);
                let expected = match (top, bottom) {
                    (true, true) => '█',
                    (true, false) => '▀',
                    (false, true) => '▄',
                    (false, false) => ' ',
                };
                assert_eq!(ch, expected, "line {row} column {x}");
            }
        }
        // Top-left finder pattern: its dark outer ring starts at module (4, 4), so line 2
        // (module rows 4 and 5) is blank from column 4 and filled in the quiet zone before it.
        assert_eq!(lines[2][..5], ['█', '█', '█', '█', ' ']);
        assert!(lines[0].iter().all(|&c| c == '█'));
    }

    #[test]
    fn qr_svg_is_an_svg_document() {
        let id = DeviceId::from_bytes([7; 32]);
        let svg = qr_svg(&id);
        assert!(svg.starts_with("<?xml"));
        assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("#000000") && svg.contains("#ffffff"));
    }
}
