//! A store's campaign poster: the QR code of its capture URL with the offer in words, as SVG or
//! PNG. The QR matrix comes from the `qrcode` crate (error correction level M); plotters draws
//! it and the text, the same way for both formats.

use crate::map::render::{font, Format};
use plotters::prelude::*;

/// What a poster says.
pub struct Poster<'a> {
    pub title: &'a str,
    /// The offer in words ("50.00 off orders of 300.00 or more").
    pub offer: &'a str,
    /// Store and redemption window, lines separated by `\n`.
    pub footer: &'a str,
    /// What the QR code encodes.
    pub url: &'a str,
}

const WIDTH: u32 = 600;
const HEIGHT: u32 = 800;

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the poster: {e:?}")
}

/// The poster as an SVG document or PNG file.
pub fn render(poster: &Poster<'_>, format: Format) -> anyhow::Result<Vec<u8>> {
    font()?;
    let code = qrcode::QrCode::with_error_correction_level(poster.url.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| anyhow::anyhow!("the capture URL does not fit a QR code: {e}"))?;
    match format {
        Format::Svg => {
            let mut svg = String::new();
            draw(&SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area(), poster, &code)?;
            Ok(svg.into_bytes())
        }
        Format::Png => {
            let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
            draw(&BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area(), poster, &code)?;
            let mut out = Vec::new();
            let mut encoder = png::Encoder::new(&mut out, WIDTH, HEIGHT);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            encoder.write_header().map_err(err)?.write_image_data(&rgb).map_err(err)?;
            Ok(out)
        }
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    poster: &Poster<'_>,
    code: &qrcode::QrCode,
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let centred = |size: u32| {
        ("sans-serif", size).into_font().color(&BLACK).pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Top,
        ))
    };
    let mid = (WIDTH / 2) as i32;
    root.draw(&Text::new(poster.title.to_string(), (mid, 40), centred(32))).map_err(err)?;
    root.draw(&Text::new(poster.offer.to_string(), (mid, 100), centred(24))).map_err(err)?;
    // The matrix with its 4-module quiet zone, as large as fits 440 px.
    let n = code.width() as i32;
    let module = (440 / (n + 8)).max(1);
    let left = mid - module * n / 2;
    let top = 160 + 4 * module;
    let colors = code.to_colors();
    for (i, c) in colors.iter().enumerate() {
        if *c == qrcode::Color::Dark {
            let (x, y) = (left + (i as i32 % n) * module, top + (i as i32 / n) * module);
            root.draw(&Rectangle::new([(x, y), (x + module, y + module)], BLACK.filled())).map_err(err)?;
        }
    }
    let below = top + n * module + 4 * module + 20;
    root.draw(&Text::new("Scan to capture the coupon".to_string(), (mid, below), centred(20)))
        .map_err(err)?;
    for (i, line) in poster.footer.lines().enumerate() {
        root.draw(&Text::new(line.to_string(), (mid, below + 40 + 24 * i as i32), centred(16)))
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poster() -> Poster<'static> {
        Poster {
            title: "Singles' Day",
            offer: "50.00 off orders of 300.00 or more",
            footer: "Store S1 · poster 0\nRedeem 2026-11-11",
            url: "HTTP://127.0.0.1:8080/C/AEAAAAAHAAB4JAACHNUMUAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        }
    }

    #[test]
    fn svg_and_png_posters_carry_the_qr_code_and_the_offer() {
        let svg = String::from_utf8(render(&poster(), Format::Svg).unwrap()).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(svg.contains("50.00 off orders of 300.00 or more"));
        let code =
            qrcode::QrCode::with_error_correction_level(poster().url.as_bytes(), qrcode::EcLevel::M).unwrap();
        let dark = code.to_colors().iter().filter(|c| **c == qrcode::Color::Dark).count();
        assert_eq!(svg.matches("<rect").count(), dark + 1, "one square per dark module and the background");
        let png = render(&poster(), Format::Png).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let reader = decoder.read_info().unwrap();
        assert_eq!((reader.info().width, reader.info().height), (WIDTH, HEIGHT));
    }

    #[test]
    fn a_52_character_token_url_makes_a_small_qr_code() {
        let code =
            qrcode::QrCode::with_error_correction_level(poster().url.as_bytes(), qrcode::EcLevel::M).unwrap();
        // Version 4 (33 x 33 modules) holds 90 alphanumeric characters at level M.
        assert!(code.width() <= 33, "{} modules", code.width());
    }
}
