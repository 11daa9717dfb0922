import { createApp } from 'vue'
import ElementPlus from 'element-plus'
import 'element-plus/dist/index.css'
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

createApp(App).use(ElementPlus).use(i18n).use(router).mount('#app')
