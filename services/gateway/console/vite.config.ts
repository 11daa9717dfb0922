import { defineConfig } from 'vitest/config'
import vue from '@vitejs/plugin-vue'

// The gateway serves the build at / and /console/... (services/gateway/console/blueprint.py);
// `npm run dev` proxies the API to a gateway at CRM_GATEWAY (default 127.0.0.1:8000).
const gateway = process.env.CRM_GATEWAY ?? 'http://127.0.0.1:8000'
const apiPrefixes = ['/auth', '/me', '/users', '/teams', '/api-keys', '/leads', '/scoring-model',
  '/customers', '/contacts', '/followups', '/pipelines', '/opportunities', '/custom-fields',
  '/quotas', '/reports', '/imports', '/exports', '/rules', '/rule-runs', '/tasks',
  '/notifications', '/webhooks', '/webhook-deliveries', '/assignment', '/system', '/health',
  '/tickets', '/desk', '/kb', '/ticket-groups']

export default defineConfig({
  base: '/console/',
  plugins: [vue()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 1500,
    rollupOptions: {
      output: {
        // Element Plus and ECharts change less often than our code: their own cached chunks.
        manualChunks: {
          'element-plus': ['element-plus'],
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
