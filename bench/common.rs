//! What the benchmarks share.

#![allow(dead_code)]

/// Signs in through the dev provider's pages and returns the `Cookie` header value.
pub async fn dev_login(base: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = client
        .get(format!("{base}/auth/login?provider=dev"))
        .send()
        .await
        .unwrap();
    let binding = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let authorize = res.headers()["location"].to_str().unwrap().to_string();
    let page = client
        .get(&authorize)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut form: Vec<(String, String)> = Vec::new();
    for part in page.split("<input type=\"hidden\" name=\"").skip(1) {
        let (name, rest) = part.split_once("\" value=\"").unwrap();
        let value = rest
            .split('"')
            .next()
            .unwrap()
            .replace("&#x2f;", "/")
            .replace("&amp;", "&");
        form.push((name.to_string(), value));
    }
    form.push(("user".into(), "alice".into()));
    let action = authorize.split('?').next().unwrap();
    let res = client.post(action).form(&form).send().await.unwrap();
    let callback = res.headers()["location"].to_str().unwrap().to_string();
    let res = client
        .get(&callback)
        .header("cookie", &binding)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "bench login failed");
    let session = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("broker_session="))
        .unwrap();
    session.split(';').next().unwrap().to_string()
}
