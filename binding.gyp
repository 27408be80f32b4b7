# Alternative build with node-gyp (`npx node-gyp rebuild`). The default build is cmake-js
# (CMakeLists.txt). Both take LibTorch's paths and flags from native/tools/torch-config.mjs.
# The sources: every native/*.cc, as CMakeLists.txt globs them.
{
  "targets": [
    {
      "target_name": "bia_torch",
      "sources": [
        "<!@(node -e \"const fs=require('fs');console.log(fs.readdirSync('native').filter(f=>f.endsWith('.cc')).sort().map(f=>'native/'+f).join(' '))\")"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node native/tools/torch-config.mjs --include-dirs)"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++14", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": [
        "-std=gnu++17", "-O2", "-fexceptions", "-frtti", "-Wno-unused-parameter", "-fopenmp",
        "<!@(node native/tools/torch-config.mjs --cxxflags)"
      ],
      "libraries": ["<!@(node native/tools/torch-config.mjs --libs)", "-ldl", "-fopenmp"]
    }
  ]
}
