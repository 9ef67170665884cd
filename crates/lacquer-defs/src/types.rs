//! The VCL value types, as VCC names them.

macro_rules! vcl_types {
    ($( $id:ident = $name:literal : $doc:literal ;)*) => {
        /// A VCL type. The names are VCC's (`STRING`, `DURATION` …), which is
        /// what error messages and module specs use.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum VclType { $( #[doc = $doc] $id, )* }

        impl VclType {
            /// Every type, in table order.
            pub const ALL: &'static [VclType] = &[ $( VclType::$id, )* ];

            /// The type's name as VCC spells it.
            pub const fn as_str(self) -> &'static str {
                match self { $( VclType::$id => $name, )* }
            }

            /// One line of documentation.
            pub const fn doc(self) -> &'static str {
                match self { $( VclType::$id => $doc, )* }
            }

            /// Looks a type up by its VCC name.
            pub fn from_name(s: &str) -> Option<VclType> {
                match s { $( $name => Some(VclType::$id), )* _ => None }
            }
        }
    };
}

vcl_types! {
    Void = "VOID": "No value: a procedure, usable only as a statement.";
    Acl = "ACL": "An access control list, matched against IP addresses with `~`.";
    Backend = "BACKEND": "A backend or director.";
    Blob = "BLOB": "An opaque block of bytes.";
    Body = "BODY": "A response body under construction (`synthetic`, `beresp.body`).";
    Bool = "BOOL": "true or false.";
    Bytes = "BYTES": "A size in bytes, written with a unit: `64KB`, `1.5MB`.";
    Duration = "DURATION": "A time span in seconds, written with a unit: `10ms`, `2h`, `1w`.";
    Enum = "ENUM": "One of a fixed set of words (module arguments).";
    Header = "HEADER": "A named header of a message: `req.http.host`.";
    Http = "HTTP": "A whole message (`req`, `beresp` …) as passed to modules.";
    Instance = "INSTANCE": "An object created with `new`.";
    Int = "INT": "A 64-bit signed integer.";
    Ip = "IP": "An IPv4 or IPv6 address with a port.";
    Probe = "PROBE": "A backend health probe.";
    Real = "REAL": "A floating point number.";
    Stevedore = "STEVEDORE": "A storage backend (`storage.s0`).";
    String = "STRING": "A string, possibly NULL (an unset header).";
    Strands = "STRANDS": "A list of strings not yet concatenated.";
    Sub = "SUB": "A subroutine, as a value passed to modules.";
    Time = "TIME": "An absolute time, seconds since the epoch.";
}

impl std::fmt::Display for VclType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
