import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The UI lives in ui/ and builds to ui/dist, which `peerfold serve` embeds (src/api/ui.rs).
// `npm run dev` proxies the API to a daemon on the default GUI address. The proxy drops the
// Origin header, which names the dev server and would be refused as cross-site.
export default defineConfig({
  root: "ui",
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true },
  server: {
    proxy: {
      "/api": {
        target: "http://127.0.0.1:8384",
        changeOrigin: true,
        configure: (proxy) => proxy.on("proxyReq", (request) => request.removeHeader("origin")),
      },
    },
  },
});
