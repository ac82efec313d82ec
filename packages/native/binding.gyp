{
  "targets": [
    {
      "target_name": "sluice_native",
      "sources": ["src/sluice_native.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-std=gnu11", "-O2"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"]
    }
  ]
}
