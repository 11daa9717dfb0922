import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router'
import { isSignedIn, loadMe, session } from './session'
import SignIn from './views/SignIn.vue'
import Leads from './views/Leads.vue'

// Client routes live under /console/ so that they never shadow an API path.
export const routes: RouteRecordRaw[] = [
  { path: '/', redirect: '/leads' },
  { path: '/signin', name: 'signin', component: SignIn, meta: { public: true } },
  { path: '/leads', name: 'leads', component: Leads },
  { path: '/board', name: 'board', component: () => import('./views/Board.vue') },
  { path: '/customers', name: 'customers', component: () => import('./views/Customers.vue') },
  { path: '/customers/:id', name: 'customer', component: () => import('./views/Customer360.vue'), props: true },
  { path: '/tasks', name: 'tasks', component: () => import('./views/Tasks.vue') },
  { path: '/approvals', name: 'approvals', component: () => import('./views/Approvals.vue') },
  { path: '/approvals/:id', name: 'approval', component: () => import('./views/Approvals.vue'), props: true },
  { path: '/dashboard', name: 'dashboard', component: () => import('./views/Dashboard.vue') },
  { path: '/admin', name: 'admin', component: () => import('./views/Admin.vue') },
  { path: '/account', name: 'account', component: () => import('./views/Account.vue') },
  { path: '/opportunities/:id', name: 'opportunity', component: () => import('./views/Opportunity.vue'), props: true },
  { path: '/contracts/:id', name: 'contract', component: () => import('./views/Contract.vue'), props: true },
  // the agents' service desk
  { path: '/desk', name: 'desk', component: () => import('./views/desk/DeskQueue.vue') },
  { path: '/desk/tickets/:id', name: 'desk-ticket', component: () => import('./views/desk/DeskTicket.vue'), props: true },
  { path: '/kb', name: 'kb', component: () => import('./views/desk/Knowledge.vue') },
  { path: '/kb/:id', name: 'kb-article', component: () => import('./views/desk/Knowledge.vue'), props: true },
  { path: '/:unknown(.*)*', redirect: '/leads' },
]

export const router = createRouter({ history: createWebHistory('/console/'), routes })

router.beforeEach(async (to) => {
  if (to.meta.public) return true
  if (!isSignedIn()) return { name: 'signin', query: { next: to.fullPath } }
  if (!session.me) {
    try {
      await loadMe()
    } catch {
      return { name: 'signin', query: { next: to.fullPath } }
    }
  }
  return true
})
