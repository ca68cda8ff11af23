//! Which expiry reminder is due: the rule, without time or storage.

/// The reminder threshold (days before expiry) due for a certificate valid for
/// `lifetime_days` in all, with `days_left` whole days of validity left, given the
/// thresholds configured and those already reminded of.
///
/// Thresholds as long as the whole lifetime do not apply: a 90-day certificate is not
/// "expiring in 90 days" the moment it is issued.
///
/// A threshold is due once the certificate is within it. Only the most urgent due
/// threshold is sent, and a reminder at a threshold covers every larger one: after a
/// week of downtime the owner gets one reminder saying "7 days", not a burst of
/// "30, 14 and 7 days".
pub fn due_reminder(
    thresholds: &[u32],
    reminded: &[u32],
    lifetime_days: i64,
    days_left: i64,
) -> Option<u32> {
    if days_left < 0 {
        return None;
    }
    let most_urgent = thresholds
        .iter()
        .copied()
        .filter(|&t| i64::from(t) >= days_left && i64::from(t) < lifetime_days)
        .min()?;
    let covered = reminded.iter().any(|&r| r <= most_urgent);
    (!covered).then_some(most_urgent)
}

#[cfg(test)]
mod tests {
    use super::due_reminder;

    const DEFAULT: [u32; 5] = [90, 60, 30, 14, 7];

    #[test]
    fn nothing_is_due_before_the_first_threshold() {
        assert_eq!(due_reminder(&DEFAULT, &[], 365, 91), None);
        assert_eq!(due_reminder(&DEFAULT, &[], 730, 365), None);
    }

    #[test]
    fn every_threshold_is_due_once_as_time_passes() {
        let mut reminded = Vec::new();
        let mut sent = Vec::new();
        for days_left in (0..=100).rev() {
            if let Some(t) = due_reminder(&DEFAULT, &reminded, 365, days_left) {
                reminded.push(t);
                sent.push((t, days_left));
            }
        }
        assert_eq!(sent, [(90, 90), (60, 60), (30, 30), (14, 14), (7, 7)]);
    }

    #[test]
    fn after_a_gap_only_the_most_urgent_threshold_is_sent() {
        assert_eq!(due_reminder(&DEFAULT, &[90], 365, 5), Some(7));
        assert_eq!(
            due_reminder(&DEFAULT, &[90, 7], 365, 5),
            None,
            "7 covers 60..14"
        );
        assert_eq!(due_reminder(&DEFAULT, &[], 365, 20), Some(30));
    }

    #[test]
    fn thresholds_as_long_as_the_lifetime_do_not_apply() {
        assert_eq!(due_reminder(&DEFAULT, &[], 90, 89), None);
        assert_eq!(due_reminder(&DEFAULT, &[], 90, 60), Some(60));
        assert_eq!(
            due_reminder(&DEFAULT, &[], 7, 6),
            None,
            "a 7-day certificate"
        );
    }

    #[test]
    fn thresholds_in_any_order_work_and_expired_certificates_get_none() {
        assert_eq!(due_reminder(&[7, 30], &[], 365, 29), Some(30));
        assert_eq!(due_reminder(&DEFAULT, &[], 365, -1), None);
        assert_eq!(due_reminder(&[], &[], 365, 3), None);
    }
}
