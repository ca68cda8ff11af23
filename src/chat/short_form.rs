//! The short request form of platforms whose forms hold few fields (Discord's modal, Teams'
//! dialog): common name, other names, type, validity and justification, by these field ids.
//! (Discord asks the questionnaire before it, in select menus: `discord::questionnaire`.)

use crate::commands::RequestForm;

/// The request a short form describes; `field` gives a field's non-empty value.
pub fn request_form(field: impl Fn(&str) -> Option<String>) -> RequestForm {
    RequestForm {
        common_name: field("common_name").unwrap_or_default(),
        subject_alternative_names: field("subject_alternative_names")
            .map(|names| vec![names])
            .unwrap_or_default(),
        certificate_type: field("certificate_type").unwrap_or_else(|| "web_server".to_owned()),
        validity_days: field("validity_days"),
        justification: field("justification").unwrap_or_default(),
        ..RequestForm::default()
    }
}
