{
  "targets": [
    {
      "target_name": "sluice_native",
      "sources": ["src/sluice_native.c", "src/common.c", "src/sockets.c", "src/descriptors.c", "src/poller.c", "src/process.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-std=gnu11", "-O2"],
      "cflags!": ["-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"]
    }
  ]
}
