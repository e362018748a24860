//! Compiles the .proto files without a system protoc: protox parses them, tonic-prost-build
//! generates the code, and the encoded descriptor set is written for gRPC reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from("../proto");
    let file_descriptors =
        protox::compile([proto_root.join("notif/v1/notif.proto")], [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("notif_descriptor.bin"),
        prost::Message::encode_to_vec(&file_descriptors),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(file_descriptors)?;
    // compile_fds knows no paths, so it emits no rerun-if-changed.
    println!("cargo:rerun-if-changed={}", proto_root.display());
    Ok(())
}
