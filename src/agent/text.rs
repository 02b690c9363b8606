//! Text from a server, made safe to print and log.

/// Text that may come from a server (an error answer, a field name in a
/// refused hook list), made safe for a terminal and for line-based logs:
/// control characters, such as the escape sequences a hostile server could
/// send or a newline that would start a fake log line, are shown escaped.
pub fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_from_a_server_are_shown_escaped() {
        assert_eq!(
            super::printable("503: \u{1b}]0;owned\u{7}\u{1b}[2Jbusy\nfake line"),
            "503: \\u{1b}]0;owned\\u{7}\\u{1b}[2Jbusy\\nfake line"
        );
        assert_eq!(super::printable("plain text: ok"), "plain text: ok");
    }
}
