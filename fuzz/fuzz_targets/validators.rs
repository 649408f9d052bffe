//! The input rules: any UTF-8 goes in, a value or a field error comes out,
//! and an accepted value satisfies the documented rules.
#![no_main]

use auth_core::validation::{LoginKey, Password};
use auth_core::{Email, Username};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(username) = Username::parse(text) {
        let len = username.as_str().chars().count();
        assert!((3..=32).contains(&len));
        assert!(username
            .as_str()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)));
        assert_eq!(username.key(), username.as_str().to_ascii_lowercase());
    }
    if let Ok(email) = Email::parse(text) {
        assert!(email.as_str().chars().count() <= 254);
        assert!(email.as_str().contains('@'));
    }
    if let Ok(password) = Password::parse("password", text, "someone", "someone@example.org") {
        let len = password.expose().chars().count();
        assert!((8..=128).contains(&len));
        assert!(!password.expose().contains('\0'));
    }
    let _ = LoginKey::from_login(text);
});
