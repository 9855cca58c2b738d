//! Compiles `proto/` once for the whole workspace, with protoc from crates.io so that a
//! fresh machine needs nothing but cargo.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // prost-build reads PROTOC; a build script is single-threaded, so setting it is sound.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("PROTOC", protoc)
    };
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .codec_path("crate::codec::ProtoCodec")
        .file_descriptor_set_path(out_dir.join("daybook_descriptor.bin"))
        .compile_protos(&["../../proto/daybook/v1/daybook.proto"], &["../../proto"])?;
    println!("cargo:rerun-if-changed=../../proto");
    Ok(())
}
