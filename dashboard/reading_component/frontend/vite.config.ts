// One ES module, no hashes, no runtime dependencies: the Python side reads it and hands it
// to st.components.v2.component(js=...). Built into ../static, which is committed.
import { defineConfig } from "vite";

export default defineConfig({
  build: {
    outDir: process.env.CHECK_OUT_DIR ?? "../static",
    emptyOutDir: true,
    target: "es2022",
    minify: true,
    sourcemap: false,
    lib: {
      entry: "src/main.ts",
      formats: ["es"],
      fileName: () => "reader.js",
    },
  },
});
