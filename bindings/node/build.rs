//! Links the addon the way Node expects (napi-build sets the platform's
//! linker flags for a loadable `.node` module).
fn main() {
    napi_build::setup();
}
