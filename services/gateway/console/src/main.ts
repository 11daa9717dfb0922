import { createApp } from 'vue'
// Element Plus's components are imported where templates use them (vite.config.ts); what
// scripts call directly needs its style here: the message and the confirmation box.
import 'element-plus/theme-chalk/base.css'
import 'element-plus/theme-chalk/el-message.css'
import 'element-plus/theme-chalk/el-message-box.css'
import App from './App.vue'
import { i18n } from './i18n'
import { router } from './router'
import { onUnauthorised } from './api'
import { signOut } from './session'
import './style.css'

onUnauthorised(() => {
  signOut()
  router.push({ name: 'signin', query: { next: router.currentRoute.value.fullPath } })
})

createApp(App).use(i18n).use(router).mount('#app')
