{
  "targets": [
    {
      "target_name": "sluice_native",
      "sources": ["src/sluice_native.c", "src/common.c", "src/sockets.c", "src/descriptors.c", "src/poller.c", "src/process.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-std=gnu11", "-O2"],
      "cflags!": ["-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"]
    },
    {
      "target_name": "sluice_mldsa",
      "sources": [
        "src/sluice_mldsa.c",
        "vendor/pqclean/common/fips202.c",
        "vendor/pqclean/ml-dsa-65/ntt.c",
        "vendor/pqclean/ml-dsa-65/packing.c",
        "vendor/pqclean/ml-dsa-65/poly.c",
        "vendor/pqclean/ml-dsa-65/polyvec.c",
        "vendor/pqclean/ml-dsa-65/reduce.c",
        "vendor/pqclean/ml-dsa-65/rounding.c",
        "vendor/pqclean/ml-dsa-65/sign.c",
        "vendor/pqclean/ml-dsa-65/symmetric-shake.c"
      ],
      "include_dirs": ["vendor/pqclean/ml-dsa-65", "vendor/pqclean/common"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-std=gnu11", "-O2", "-fvisibility=hidden"],
      "cflags!": ["-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"]
    }
  ]
}
