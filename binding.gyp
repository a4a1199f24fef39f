# A shim for tools that expect node-gyp (e.g. `node-gyp rebuild`, or npm when
# install scripts are disabled and a consumer rebuilds by hand). It builds
# nothing itself: its one action runs the same cmake-js build that
# `npm install` runs (scripts/build-native.mjs), so the steps exist once.
{
  "targets": [
    {
      "target_name": "pidgen",
      "type": "none",
      "actions": [
        {
          "action_name": "cmake_js_build",
          "inputs": ["native/CMakeLists.txt"],
          "outputs": ["build/native/Release/pidgen.node"],
          "action": ["node", "<(module_root_dir)/scripts/build-native.mjs", "--force"]
        }
      ]
    }
  ]
}
