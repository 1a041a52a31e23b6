//! Prints the control API's OpenAPI document (what `/api/openapi.json` serves) without a
//! daemon, for generating the web UI's types: `npm run gen:api` runs
//! `cargo run --example openapi` and feeds the output to openapi-typescript.

fn main() -> Result<(), serde_json::Error> {
    println!("{}", peerfold::api::openapi().to_pretty_json()?);
    Ok(())
}
