//! The HTML pages, from `templates/` (compiled into the binary so it runs from any folder).

use std::sync::Arc;

use minijinja::Environment;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("logout.html", include_str!("../templates/logout.html")),
    (
        "logged_out.html",
        include_str!("../templates/logged_out.html"),
    ),
    ("home.html", include_str!("../templates/home.html")),
    (
        "firebase_login.html",
        include_str!("../templates/firebase_login.html"),
    ),
    (
        "dev_login.html",
        include_str!("../templates/dev_login.html"),
    ),
    ("sessions.html", include_str!("../templates/sessions.html")),
];

#[derive(Clone)]
pub struct Templates {
    env: Arc<Environment<'static>>,
}

impl Templates {
    pub fn load() -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        Ok(Templates { env: Arc::new(env) })
    }

    pub fn render(&self, name: &str, ctx: minijinja::Value) -> Result<String, String> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| format!("template {name}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders() {
        let t = Templates::load().unwrap();
        for (name, _) in TEMPLATES {
            if *name == "base.html" {
                continue;
            }
            t.render(name, minijinja::context! { error => Some("x"), providers => Vec::<u8>::new(), federated => Vec::<u8>::new(), users => Vec::<u8>::new(), hidden => Vec::<u8>::new() })
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let f = vec![
            minijinja::context! { name => "google.com".to_string(), url => "http://x".to_string() },
        ];
        t.render("firebase_login.html", minijinja::context! { provider => "fb".to_string(), action => "http://a".to_string(), return_to => "/", federated => f, error => None::<&str> })
            .unwrap_or_else(|e| panic!("{e}"));
    }
}
