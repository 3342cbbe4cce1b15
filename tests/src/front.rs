//! The web servers people put in front of Tether, as a column of a table: nginx, Apache and
//! Caddy, each as a FastCGI client of Tether's FastCGI listener and as an HTTP reverse proxy to
//! its HTTP listener. The configurations are the README's snippets ("Behind a web server"),
//! and [`Pair::stops`] is what each pair does to a [`Guest`] whose client leaves.

use crate::foreground::Foreground;
use crate::nginx::{self, Nginx};
use crate::{Server, apache, caddy};

/// A web server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Front {
    /// nginx: `fastcgi_pass`, `proxy_pass`.
    Nginx,
    /// Apache httpd: `mod_proxy_fcgi`, `mod_proxy_http`.
    Apache,
    /// Caddy: `reverse_proxy` with `transport fastcgi`, and without.
    Caddy,
}

/// How a web server passes requests on to Tether.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// FastCGI, to Tether's FastCGI listener (TCP).
    FastCgi,
    /// HTTP/1.1, to Tether's HTTP listener.
    Http,
}

/// A web server and how it passes requests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair {
    /// The web server.
    pub front: Front,
    /// How it passes requests on.
    pub via: Via,
}

impl Pair {
    /// Every pair: each web server both ways.
    pub const ALL: [Pair; 6] = [
        Pair { front: Front::Nginx, via: Via::FastCgi },
        Pair { front: Front::Nginx, via: Via::Http },
        Pair { front: Front::Apache, via: Via::FastCgi },
        Pair { front: Front::Apache, via: Via::Http },
        Pair { front: Front::Caddy, via: Via::FastCgi },
        Pair { front: Front::Caddy, via: Via::Http },
    ];

    /// Its name, as rows, failures and the benchmark spell it (`apache-fastcgi`).
    pub fn name(self) -> String {
        let front = match self.front {
            Front::Nginx => "nginx",
            Front::Apache => "apache",
            Front::Caddy => "caddy",
        };
        let via = match self.via {
            Via::FastCgi => "fastcgi",
            Via::Http => "http",
        };
        format!("{front}-{via}")
    }

    /// Whether the web server closes its link to Tether as soon as its client leaves, so that a
    /// guest that has sent nothing yet (sleeping, computing, waiting) is stopped at once.
    /// nginx watches its client's socket while it waits for the backend, and Caddy's HTTP proxy
    /// cancels the backend request with its client's; Apache and Caddy's FastCGI transport
    /// notice only when a write to the client fails, so they close the link at an output that
    /// follows the close, and a guest that writes nothing runs to its end.
    pub fn tells_a_silent_guest(self) -> bool {
        matches!((self.front, self.via), (Front::Nginx, _) | (Front::Caddy, Via::Http))
    }

    /// Whether `guest` is stopped when its client leaves through this pair: every pair closes
    /// its link to Tether once a write to its client fails, so a guest that writes on is
    /// stopped; a silent one only where [`Pair::tells_a_silent_guest`].
    pub fn stops(self, guest: Guest) -> bool {
        guest == Guest::Streaming || self.tells_a_silent_guest()
    }

    /// The web server's site (nginx `server` block, Apache `VirtualHost`, Caddy site body)
    /// passing every request on to `server`, with the CGI variable `APP_ENV=tested` of its own
    /// over FastCGI and the client's address in `X-Forwarded-For` over HTTP; flushes reach the
    /// client as they happen. Caddy's HTTP proxy buffers request bodies (`buffer_requests`):
    /// Caddy 2.6 serves HTTP/1 half-duplex, as Go's server does, so once a response that starts
    /// before its request body has arrived (the echo guest's) is flushed to the client, the rest of
    /// the body is gone, and Caddy closes its link to Tether mid-response.
    fn site(self, server: &Server) -> String {
        let fastcgi = server.fastcgi_tcp();
        let http = server.addr();
        match (self.front, self.via) {
            (Front::Nginx, Via::FastCgi) => nginx::pass(fastcgi, false, false),
            (Front::Nginx, Via::Http) => format!(
                "        location / {{\n            proxy_pass http://{http};\n            proxy_http_version 1.1;\n            \
                 proxy_set_header Host $http_host;\n            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n            \
                 proxy_buffering off;\n        }}"
            ),
            (Front::Apache, Via::FastCgi) => {
                format!("    SetEnv APP_ENV tested\n    ProxyPass \"/\" \"fcgi://{fastcgi}/\" flushpackets=on")
            }
            (Front::Apache, Via::Http) => format!("    ProxyPreserveHost On\n    ProxyPass \"/\" \"http://{http}/\""),
            (Front::Caddy, Via::FastCgi) => format!(
                "    reverse_proxy {fastcgi} {{\n        flush_interval -1\n        transport fastcgi {{\n            env APP_ENV tested\n        }}\n    }}"
            ),
            (Front::Caddy, Via::Http) => format!("    reverse_proxy {http} {{\n        buffer_requests\n    }}"),
        }
    }
}

/// A guest whose client leaves through a web server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guest {
    /// Seed A: logs `start`, sleeps 1.5 s, logs `end`; it writes nothing, and the client
    /// leaves during the sleep.
    Silent,
    /// Seed A2: writes and flushes, and the client leaves during the 1.5 s sleep after the first
    /// write; seven more writes 150 ms apart follow.
    Streaming,
}

impl Guest {
    /// Both guests.
    pub const ALL: [Guest; 2] = [Guest::Silent, Guest::Streaming];

    /// Its name, as rows and the benchmark spell it.
    pub fn name(self) -> &'static str {
        match self {
            Guest::Silent => "silent",
            Guest::Streaming => "streaming",
        }
    }

    /// Its built guest.
    pub fn fixture(self) -> &'static str {
        match self {
            Guest::Silent => "seed_a",
            Guest::Streaming => "seed_a2",
        }
    }

    /// Its query: the seed's timing.
    pub fn query(self) -> &'static str {
        match self {
            Guest::Silent => "ms=1500",
            Guest::Streaming => "n=8&first_ms=1500&ms=150",
        }
    }

    /// The start of the guest line after which the client leaves.
    pub fn leave_after(self) -> &'static str {
        match self {
            Guest::Silent => "start",
            Guest::Streaming => "w 1",
        }
    }
}

/// nginx, Apache and Caddy in front of one Tether, each with a FastCGI site and an HTTP site.
pub struct Fronts {
    /// nginx.
    nginx: Nginx,
    /// Apache.
    apache: Foreground,
    /// Caddy.
    caddy: Foreground,
}

/// The index of a pair's site in its web server: the FastCGI one first.
fn site_index(via: Via) -> usize {
    match via {
        Via::FastCgi => 0,
        Via::Http => 1,
    }
}

impl Fronts {
    /// Starts the three web servers in front of `server`, which listens for FastCGI on TCP and
    /// for HTTP (`Server::start_fastcgi`).
    pub fn start(server: &Server) -> Fronts {
        let sites = |front: Front| -> Vec<String> { [Via::FastCgi, Via::Http].map(|via| Pair { front, via }.site(server)).to_vec() };
        Fronts {
            nginx: Nginx::start("", &sites(Front::Nginx)),
            apache: apache::start(&sites(Front::Apache)),
            caddy: caddy::start(&sites(Front::Caddy)),
        }
    }

    /// The address a client of `pair` connects to.
    pub fn addr(&self, pair: Pair) -> String {
        let i = site_index(pair.via);
        match pair.front {
            Front::Nginx => self.nginx.addr(i),
            Front::Apache => self.apache.addr(i),
            Front::Caddy => self.caddy.addr(i),
        }
    }
}
