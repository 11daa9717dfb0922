import { defineConfig } from 'vitest/config'
import vue from '@vitejs/plugin-vue'
import Components from 'unplugin-vue-components/vite'
import { ElementPlusResolver } from 'unplugin-vue-components/resolvers'

// The gateway serves the build at / and /console/... (services/gateway/console/blueprint.py);
// `npm run dev` proxies the API to a gateway at CRM_GATEWAY (default 127.0.0.1:8000).
const gateway = process.env.CRM_GATEWAY ?? 'http://127.0.0.1:8000'
const apiPrefixes = ['/auth', '/me', '/users', '/teams', '/api-keys', '/leads', '/scoring-model',
  '/customers', '/contacts', '/followups', '/pipelines', '/opportunities', '/custom-fields',
  '/quotas', '/reports', '/imports', '/exports', '/rules', '/rule-runs', '/tasks',
  '/notifications', '/webhooks', '/webhook-deliveries', '/assignment', '/system', '/health',
  '/tickets', '/desk', '/kb', '/ticket-groups']

// Element Plus on demand, the way its documentation recommends: each <el-*> a template uses
// is imported with its own style, so the first screen loads the components it shows and not
// the whole library (the full install was 1 MB of script and 365 KB of CSS, most of the
// sign-in page's time in a cold browser). `dts: false`: the templates' types stay as they were.

export default defineConfig({
  base: '/console/',
  // Vitest registers the whole library in each test (tests/helpers.ts `plugins()`): Node cannot
  // load the components' CSS imports, and the browser tests cover the build's own wiring.
  plugins: [vue(), ...(process.env.VITEST ? [] : [
    Components({ dts: false, resolvers: [ElementPlusResolver({ importStyle: 'css' })] })])],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 1500,
    rollupOptions: {
      output: {
        // Element Plus and ECharts change less often than our code: their own cached chunks.
        manualChunks: {
          echarts: ['echarts/core', 'echarts/charts', 'echarts/components', 'echarts/renderers'],
        },
      },
    },
  },
  server: {
    proxy: Object.fromEntries(apiPrefixes.map((prefix) => [prefix, gateway])),
  },
  test: {
    environment: 'jsdom',
    include: ['tests/**/*.test.ts'],
    // the admin dialogs render many Element Plus components: slow in jsdom on a busy machine
    testTimeout: 20_000,
  },
})
