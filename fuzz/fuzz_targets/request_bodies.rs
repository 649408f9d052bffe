//! Raw request bodies: the strict form decoder and the JSON-object reader
//! (with the field extraction the handlers do) must never panic.
#![no_main]

use auth_server::api::body::{parse_form, parse_json_object};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(form) = parse_form(data) {
        for name in ["grant_type", "username", "password", "refresh_token", "token"] {
            let _ = form.single(name);
            let _ = form.required(name);
        }
    }
    if let Ok(fields) = parse_json_object(data) {
        let _ = fields.strings(["username", "email", "password"]);
        let _ = fields.strings(["current_password", "new_password"]);
    }
});
