//! The JSON log line, written straight to the output.
//!
//! tracing-subscriber's own JSON format keeps each span's fields as a JSON string and, for every
//! line logged inside the span, parses that string back into a map to write it again (and a
//! field recorded later re-parses and re-writes it too). Every request logs at least one line
//! inside its span, so that round trip was paid per request. Here a span's fields are kept as
//! the inside of a JSON object (`"request_id":"…","method":"GET"`) and spliced into each line as
//! they are. The line has the same shape as tracing-subscriber's (`timestamp`, `level`,
//! `fields` with `message`, `target`, and `span` with the current span's fields and `name`), so
//! whatever reads the logs reads them unchanged.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::span::Record;
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Span fields as the members of a JSON object, without the braces.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonMembers;

impl<'writer> FormatFields<'writer> for JsonMembers {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut members = Members::new(&mut writer, true);
        fields.record(&mut members);
        members.result
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &Record<'_>,
    ) -> fmt::Result {
        let first = current.fields.is_empty();
        let mut members = Members::new(&mut current.fields, first);
        fields.record(&mut members);
        members.result
    }
}

/// One JSON line per event.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLine;

impl<S> FormatEvent<S, JsonMembers> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonMembers>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        write_timestamp(&mut writer, time::OffsetDateTime::now_utc())?;
        write!(
            writer,
            "\",\"level\":\"{}\",\"fields\":{{",
            metadata.level()
        )?;
        let mut members = Members::new(&mut writer, true);
        event.record(&mut members);
        let Members {
            result, log_target, ..
        } = members;
        result?;
        writer.write_str("},\"target\":")?;
        // A `log` record (from a dependency that logs through `log`) names its own target.
        write_string(
            &mut writer,
            log_target.as_deref().unwrap_or(metadata.target()),
        )?;
        if let Some(span) = ctx.lookup_current() {
            writer.write_str(",\"span\":{")?;
            let extensions = span.extensions();
            if let Some(fields) = extensions.get::<FormattedFields<JsonMembers>>() {
                if !fields.is_empty() {
                    writer.write_str(fields)?;
                    writer.write_char(',')?;
                }
            }
            writer.write_str("\"name\":")?;
            write_string(&mut writer, span.name())?;
            writer.write_char('}')?;
        }
        writer.write_str("}\n")
    }
}

/// Writes visited fields as JSON members.
struct Members<'a, W: Write> {
    out: &'a mut W,
    first: bool,
    result: fmt::Result,
    /// `log.target` of a record bridged from `log` (its other `log.*` fields are left out).
    log_target: Option<String>,
}

impl<'a, W: Write> Members<'a, W> {
    fn new(out: &'a mut W, first: bool) -> Self {
        Self {
            out,
            first,
            result: Ok(()),
            log_target: None,
        }
    }

    fn member(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            if !self.first {
                self.out.write_char(',')?;
            }
            self.first = false;
            write_string(self.out, field.name())?;
            self.out.write_char(':')?;
            value(self.out)
        })();
    }

    fn bridged(&mut self, field: &Field, value: &dyn fmt::Debug) -> bool {
        let name = field.name();
        if !name.starts_with("log.") {
            return false;
        }
        if name == "log.target" {
            self.log_target = Some(format!("{value:?}").trim_matches('"').to_owned());
        }
        true
    }
}

impl<W: Write> Visit for Members<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "log.target" {
            self.log_target = Some(value.to_owned());
            return;
        }
        if field.name().starts_with("log.") {
            return;
        }
        self.member(field, |out| write_string(out, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name().starts_with("log.") {
            return;
        }
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.member(field, |out| write!(out, "{value}"));
        } else {
            self.member(field, |out| out.write_str("null"));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.bridged(field, value) {
            return;
        }
        self.member(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value:?}")?;
            out.write_char('"')
        });
    }
}

/// A JSON string literal.
fn write_string(out: &mut impl Write, value: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(out).write_str(value)?;
    out.write_char('"')
}

/// Escapes what it is given for the inside of a JSON string.
struct Escaped<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut start = 0;
        for (i, byte) in s.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f | 0x7f => "",
                _ => continue,
            };
            self.0.write_str(&s[start..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

/// RFC 3339 in UTC with microseconds, as tracing-subscriber writes it.
fn write_timestamp(out: &mut impl Write, now: time::OffsetDateTime) -> fmt::Result {
    write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.microsecond()
    )
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::Value;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(log: impl FnOnce()) -> Vec<Value> {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(JsonMembers)
                .event_format(JsonLine)
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, log);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    #[test]
    fn a_line_has_the_fields_target_and_current_span() {
        let got = lines(|| {
            let span = tracing::info_span!("http_request", request_id = "r-1", method = %"GET");
            span.in_scope(|| {
                tracing::info!(route = "/v1/users/{id}", status = 200_u16, latency_ms = %format_args!("{:.2}", 1.5), "request completed");
            });
            tracing::warn!(
                attempt = -3_i64,
                ok = true,
                ratio = 0.5,
                nan = f64::NAN,
                "outside"
            );
        });
        assert_eq!(got.len(), 2);
        let line = &got[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["fields"]["message"], "request completed");
        assert_eq!(line["fields"]["route"], "/v1/users/{id}");
        assert_eq!(line["fields"]["status"], 200);
        assert_eq!(line["fields"]["latency_ms"], "1.50");
        assert_eq!(line["target"], module_path!());
        assert_eq!(line["span"]["name"], "http_request");
        assert_eq!(line["span"]["request_id"], "r-1");
        assert_eq!(line["span"]["method"], "GET");
        let timestamp = line["timestamp"].as_str().unwrap();
        assert!(
            time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
                .is_ok(),
            "{timestamp}"
        );
        let outside = &got[1];
        assert_eq!(outside["level"], "WARN");
        assert_eq!(outside["fields"]["attempt"], -3);
        assert_eq!(outside["fields"]["ok"], true);
        assert_eq!(outside["fields"]["ratio"], 0.5);
        assert!(outside["fields"]["nan"].is_null());
        assert!(outside.get("span").is_none());
    }

    #[test]
    fn values_are_escaped_and_later_span_fields_appended() {
        let got = lines(|| {
            let span = tracing::info_span!("job", id = tracing::field::Empty);
            span.record("id", "a\"b\\c\nd\u{1}");
            span.in_scope(|| tracing::info!(error = ?"quote \" and\ttab", "line"));
        });
        let line = &got[0];
        assert_eq!(line["span"]["id"], "a\"b\\c\nd\u{1}");
        assert_eq!(line["fields"]["error"], "\"quote \\\" and\\ttab\"");
    }
}
